#!/usr/bin/env bash
# Debian packages that some tests use for real (they skip with a reason where these are missing):
#   dicom3tools       dciodvfy, the DICOM validator run on every SR / SEG the tests write
#   orthanc(-dicomweb) a real PACS with DICOMweb for the PACS round-trip tests
#   chromium(-driver) headless browser for the web-viewer test
#   invesalius-examples a real head CT (recognition tests)
#   postgresql        a throwaway PostgreSQL cluster on loopback for the job-table tests
# Installs what is missing when run as root on Debian/Ubuntu; otherwise says what will be skipped.
set -uo pipefail
PKGS=(dicom3tools orthanc orthanc-dicomweb chromium chromium-driver invesalius-examples postgresql)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian packages for the tests: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || echo "warning: could not install ${missing[*]}; the tests that need them will skip" >&2
else
  echo "note: not root or no apt-get; tests that need ${missing[*]} will skip" >&2
fi
exit 0
