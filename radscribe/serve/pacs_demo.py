"""``python -m radscribe.serve.pacs_demo [--out DIR]`` (``make demo-pacs``): the PACS round trip on this machine.

Starts a local Orthanc (loopback only), stores a synthetic chest CT with one nodule in it, starts the radscribe
app with one worker thread against Orthanc's DICOMweb, asks it to analyse the study by StudyInstanceUID and
prints the series Orthanc then holds for that study (the CT and radscribe's SR). Stops everything at the end.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m radscribe.serve.pacs_demo", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="folder for Orthanc's storage and the job folder (default: temporary)")
    args = ap.parse_args(argv)

    import httpx
    import pydicom
    from fastapi.testclient import TestClient

    from radscribe.data.phantom import make_phantom, write_dicom_series
    from radscribe.serve import orthanc
    from radscribe.serve.app import create_app
    from radscribe.serve.worker import Worker

    why = orthanc.missing_reason()
    if why:
        print(f"error: {why}; apt-get install orthanc orthanc-dicomweb", file=sys.stderr)
        return 2
    root = args.out or Path(tempfile.mkdtemp(prefix="radscribe-pacs-demo-"))
    pacs = orthanc.Orthanc(root / "orthanc").wait_ready()
    try:
        ph = make_phantom(0, shape=(40, 192, 192), n_nodules=1, spacing=(5.0, 2.0, 2.0))
        files = write_dicom_series(ph.volume_hu, ph.spacing, ph.origin, root / "phantom", seed=0)
        for p in files:
            pacs.upload(p.read_bytes())
        study = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
        print(f"Orthanc at {pacs.url} holds study {study} ({len(files)} CT slices)")
        app = create_app(root / "work", pacs_url=pacs.dicomweb)
        with TestClient(app) as c:
            worker = Worker(app.state.store)
            import threading

            t = threading.Thread(target=worker.run, daemon=True)
            t.start()
            t0 = time.perf_counter()
            jid = c.post("/v1/pacs/studies", json={"study_uid": study}).json()["job_id"]
            while (job := c.get(f"/v1/studies/{jid}").json())["status"] not in ("done", "failed"):
                time.sleep(0.2)
            worker.stop.set()
            t.join(10)
        print(f"job {jid}: {job['status']} in {time.perf_counter() - t0:.1f} s"
              + (f" ({job['error']})" if job["error"] else ""))
        for s in httpx.get(f"{pacs.dicomweb}/studies/{study}/series", timeout=10).json():
            print(f"  series {s['0020000E']['Value'][0]}: {s['00080060']['Value'][0]}, "
                  f"{s.get('00201209', {}).get('Value', ['?'])[0]} instance(s)")
        return 0 if job["status"] == "done" else 1
    finally:
        pacs.stop()


if __name__ == "__main__":
    sys.exit(main())
