"""PACS round trip with a real Orthanc on loopback: QIDO-RS + WADO-RS pull by StudyInstanceUID, analysis,
STOW-RS of the DICOM SR back into the same study, under the source's patient."""

from __future__ import annotations

import io

import httpx
import pydicom
import pytest
from fastapi.testclient import TestClient

from radscribe.serve.app import create_app
from radscribe.serve import orthanc
from tests.serve.conftest import wait_job, worker_thread

pytestmark = pytest.mark.skipif(orthanc.missing_reason() is not None, reason=str(orthanc.missing_reason()))
pytest.importorskip("dicomweb_client")


@pytest.fixture()
def pacs(tmp_path):
    o = orthanc.Orthanc(tmp_path / "orthanc").wait_ready()
    yield o
    o.stop()


@pytest.fixture()
def study_in_pacs(pacs, tmp_path) -> str:
    from radscribe.data.phantom import make_phantom, write_dicom_series

    ph = make_phantom(2, shape=(24, 128, 128), n_nodules=1, spacing=(5.0, 2.8, 2.8))
    files = write_dicom_series(ph.volume_hu, ph.spacing, ph.origin, tmp_path / "src", seed=2)
    for p in files:
        ds = pydicom.dcmread(p)
        ds.PatientName, ds.PatientID = "Roe^Richard", "MRN55501"
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        pacs.upload(buf.getvalue())
    return str(pydicom.dcmread(files[0]).StudyInstanceUID)


def test_pull_analyse_and_store_sr_back_into_the_same_study(tmp_path, pacs, study_in_pacs):
    app = create_app(tmp_path / "work", pacs_url=pacs.dicomweb)
    with TestClient(app) as c, worker_thread(app.state.store):
        r = c.post("/v1/pacs/studies", json={"study_uid": study_in_pacs})
        assert r.status_code == 202, r.text
        job = wait_job(c, r.json()["job_id"], timeout=180)
        assert job["status"] == "done", job
        assert job["analysis"]["study"]["modality"] == "CT" and job["pacs"]["instances_pulled"] == 24
        (stored,) = job["pacs"]["stored"]
        assert stored["modality"] == "SR"
        again = c.post("/v1/pacs/studies", json={"study_uid": study_in_pacs})  # idempotent
        assert again.status_code == 200 and again.json()["job_id"] == job["job_id"]
        missing = c.post("/v1/pacs/studies", json={"study_uid": "1.2.3.4.5"})
        assert wait_job(c, missing.json()["job_id"], 60)["error"].startswith("the PACS holds no study 1.2.3.4.5")
        assert c.post("/v1/pacs/studies", json={"study_uid": "../etc"}).status_code == 422

    series = httpx.get(f"{pacs.dicomweb}/studies/{study_in_pacs}/series", timeout=10).json()
    modalities = sorted(s["00080060"]["Value"][0] for s in series)
    assert modalities == ["CT", "SR"]  # the SR is filed under the same study
    sr_uid = stored["sop_instance_uid"]
    inst = httpx.post(f"{pacs.url}/tools/lookup", content=sr_uid, timeout=10).json()
    (hit,) = [i for i in inst if i["Type"] == "Instance"]
    tags = httpx.get(f"{pacs.url}/instances/{hit['ID']}/simplified-tags", timeout=10).json()
    assert (tags["PatientID"], tags["PatientName"], tags["StudyInstanceUID"]) == ("MRN55501", "Roe^Richard",
                                                                                study_in_pacs)


def test_no_pacs_configured_is_a_clear_400(tmp_path):
    with TestClient(create_app(tmp_path)) as c:
        r = c.post("/v1/pacs/studies", json={"study_uid": "1.2.3"})
        assert r.status_code == 400 and "--pacs-url" in r.json()["error"]
