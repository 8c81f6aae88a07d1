"""No patient identifier in the job table, the work folder or the log after a study of a named patient;
the DICOM SR (what goes back to the PACS) keeps the source's patient module."""

from __future__ import annotations

import io
import logging
import sqlite3

import pydicom
import pytest
from fastapi.testclient import TestClient

from radscribe.serve.app import create_app
from tests.serve.conftest import post, wait_job, worker_thread

NAME, PID, ACCESSION, BIRTH = "Doe^Jane", "MRN12345678", "ACC99887766", "19510203"
NEEDLES = [b"Doe", b"DOE", b"Jane", PID.encode(), ACCESSION.encode(), BIRTH.encode()]


@pytest.fixture()
def named_series(tmp_path) -> list[tuple[str, bytes]]:
    from radscribe.data.phantom import make_phantom, write_dicom_series

    ph = make_phantom(1, shape=(16, 96, 96), n_nodules=1, spacing=(5.0, 3.5, 3.5))
    files = write_dicom_series(ph.volume_hu, ph.spacing, ph.origin, tmp_path / "src", seed=1)
    out = []
    for k, p in enumerate(files):
        ds = pydicom.dcmread(p)
        ds.PatientName, ds.PatientID, ds.AccessionNumber, ds.PatientBirthDate = NAME, PID, ACCESSION, BIRTH
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append((f"Doe_Jane_{PID}_{k:03d}.dcm", buf.getvalue()))  # the names carry identifiers too
    return out


def test_named_patient_leaves_no_identifier_behind(tmp_path, named_series):
    work = tmp_path / "work"
    log_path = tmp_path / "server.log"
    handler = logging.FileHandler(log_path)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        app = create_app(work)
        with TestClient(app) as c, worker_thread(app.state.store):
            r = post(c, named_series)
            assert r.status_code == 202, r.text
            job = wait_job(c, r.json()["job_id"], timeout=180)
            assert job["status"] == "done", job
            status_text = c.get(f"/v1/studies/{job['job_id']}").text
            sr = c.get(job["links"]["report.sr.dcm"]).content
            bad = post(c, [(f"Doe_Jane_{PID}.zip", b"PK\x03\x04 broken")])  # a refusal message names no file
            assert bad.status_code == 400 and "Doe" not in bad.text and PID not in bad.text
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()

    for needle in NEEDLES:
        assert needle.decode() not in status_text
    leaks = []
    for p in [*work.rglob("*"), log_path]:
        if not p.is_file() or p.name == "report.sr.dcm":
            continue
        data = p.read_bytes()
        leaks += [(str(p.relative_to(tmp_path)), n) for n in NEEDLES if n in data]
    assert leaks == [], leaks
    assert log_path.stat().st_size > 0  # the log was written (the worker logs each job)
    with sqlite3.connect(work / "jobs.db") as conn:
        (ref,) = conn.execute("SELECT patient_ref FROM jobs WHERE job_id = ?", (job["job_id"],)).fetchone()
    assert ref is not None and len(ref) == 16 and int(ref, 16) >= 0  # a salted hash to correlate jobs
    ds = pydicom.dcmread(io.BytesIO(sr))
    assert (str(ds.PatientName), ds.PatientID, ds.Modality) == (NAME, PID, "SR")  # what a PACS files it by
