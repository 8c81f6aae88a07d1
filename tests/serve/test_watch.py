"""The Orthanc watcher against a real Orthanc on loopback: a stable study becomes one PACS job, the StableStudy that
follows radscribe's own SR is the same job (no second analysis), a restart continues from the state file, and a
server that cannot take the job (503) keeps the change for the next poll."""

from __future__ import annotations

import io
import time

import httpx
import pydicom
import pytest
from fastapi.testclient import TestClient

from radscribe.serve import orthanc
from radscribe.serve.app import create_app
from radscribe.serve.watch import OrthancWatcher, RetryLater, api_submitter
from tests.serve.conftest import wait_job, worker_thread

pytestmark = pytest.mark.skipif(orthanc.missing_reason() is not None, reason=str(orthanc.missing_reason()))
pytest.importorskip("dicomweb_client")


def _wait_stable(o: orthanc.Orthanc, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        studies = httpx.get(o.url + "/studies?expand", timeout=10).json()
        if studies and all(s.get("IsStable") for s in studies):
            return
        time.sleep(0.3)
    raise AssertionError("Orthanc never marked the study stable")


def _upload_study(o: orthanc.Orthanc, tmp_path) -> str:
    from radscribe.data.phantom import make_phantom, write_dicom_series

    ph = make_phantom(3, shape=(24, 96, 96), n_nodules=1, spacing=(5.0, 3.7, 3.7))
    files = write_dicom_series(ph.volume_hu, ph.spacing, ph.origin, tmp_path / "src", seed=3)
    for p in files:
        buf = io.BytesIO()
        pydicom.dcmread(p).save_as(buf, enforce_file_format=True)
        o.upload(buf.getvalue())
    return str(pydicom.dcmread(files[0]).StudyInstanceUID)


def test_stable_study_is_submitted_once_and_a_restart_continues(tmp_path):
    o = orthanc.Orthanc(tmp_path / "orthanc", stable_age_s=1).wait_ready()
    try:
        uid = _upload_study(o, tmp_path)
        _wait_stable(o)
        app = create_app(tmp_path / "work", pacs_url=o.dicomweb)
        state = tmp_path / "watch.json"
        with TestClient(app) as c, worker_thread(app.state.store):
            # a server that cannot take the job now: the change is kept, nothing is lost
            def busy(_uid: str) -> str:
                raise RetryLater("radscribe server answered 503")

            res = OrthancWatcher(o.url, busy, state).poll_once()
            assert res.retry and res.submitted == []  # state stops before the StableStudy change

            w = OrthancWatcher(o.url, api_submitter("", None, http=c), state)
            res = w.poll_once()
            assert [u for u, _ in res.submitted] == [uid] and not res.retry
            job_id = res.submitted[0][1]
            assert wait_job(c, job_id, timeout=180)["status"] == "done"
            # radscribe stored its SR into the study: Orthanc raises StableStudy again; it is the same job
            _wait_stable(o)
            res2 = w.poll_once()
            assert [j for _, j in res2.submitted] in ([], [job_id])
            # a restarted watcher (same state file) submits nothing more
            res3 = OrthancWatcher(o.url, api_submitter("", None, http=c), state).poll_once()
            assert res3.submitted == [] and res3.last_seq >= res2.last_seq
            assert len(app.state.store.all()) == 1
    finally:
        o.stop()


def test_refused_token_and_foreign_state_are_user_errors(tmp_path):
    from radscribe.errors import RadscribeInputError

    state = tmp_path / "watch.json"
    state.write_text("not json")
    with pytest.raises(RadscribeInputError, match="not radscribe's"):
        OrthancWatcher("http://127.0.0.1:9", lambda u: "x", state).last_seq()

    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": "a bearer token is required"})

    submit = api_submitter("http://radscribe.test", "bad", http=httpx.Client(transport=httpx.MockTransport(refuse)))
    with pytest.raises(RadscribeInputError, match="refused the token"):
        submit("1.2.3")
