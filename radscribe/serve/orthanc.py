"""A local Orthanc PACS (Debian packages ``orthanc`` + ``orthanc-dicomweb``) as a plain process, for the tests
and ``make demo-pacs``: its own storage folder, a free loopback HTTP port, ``RemoteAccessAllowed: false``,
no DICOM port, the DICOMweb plugin that the Debian package installs. No service manager is needed."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

PLUGIN_DIRS = (Path("/usr/share/orthanc/plugins"), Path("/usr/lib/orthanc"))


def dicomweb_plugin() -> Path | None:
    for d in PLUGIN_DIRS:
        hits = sorted(d.glob("libOrthancDicomWeb.so*")) if d.is_dir() else []
        if hits:
            return hits[0]
    return None


def missing_reason() -> str | None:
    if shutil.which("Orthanc") is None:
        return "Orthanc is not installed (Debian package orthanc)"
    if dicomweb_plugin() is None:
        return "the Orthanc DICOMweb plugin is not installed (Debian package orthanc-dicomweb)"
    return None


class Orthanc:
    def __init__(self, folder: Path, *, stable_age_s: int = 60):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.dicomweb = self.url + "/dicom-web"
        folder.mkdir(parents=True, exist_ok=True)
        config = {"Name": "radscribe-test", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
                  "HttpPort": self.port, "DicomServerEnabled": False, "RemoteAccessAllowed": False,
                  "AuthenticationEnabled": False, "Plugins": [str(dicomweb_plugin())],
                  "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}, "StableAge": int(stable_age_s)}
        (folder / "orthanc.json").write_text(json.dumps(config, indent=1))
        self.log = open(folder / "orthanc.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(["Orthanc", str(folder / "orthanc.json")], stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL, cwd=folder)

    def wait_ready(self, timeout: float = 30.0) -> "Orthanc":
        import httpx

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.proc.returncode}")
            try:
                if httpx.get(self.dicomweb + "/studies", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("Orthanc did not start")

    def upload(self, data: bytes) -> dict:
        import httpx

        r = httpx.post(self.url + "/instances", content=data, timeout=30)
        r.raise_for_status()
        return r.json()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
