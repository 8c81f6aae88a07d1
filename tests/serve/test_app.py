"""radscribe serve: upload -> job -> findings / report / FHIR / SR over HTTP, and every refusal path."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from radscribe.errors import UnreadableFileError
from radscribe.findings.schema import validate_findings
from radscribe.serve.app import create_app
from radscribe.serve.jobs import JobStore
from radscribe.serve.upload import MIB, Limits
from tests.serve.conftest import png_bytes as _png_bytes
from tests.serve.conftest import post as _post
from tests.serve.conftest import wait_job as _wait
from tests.serve.conftest import worker_thread
from tests.serve.conftest import zip_bytes as _zip


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="module")
def client(work):
    app = create_app(work)
    with TestClient(app) as c, worker_thread(app.state.store):  # the real analysis session
        yield c


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory) -> list[Path]:
    """A 24x128x128 phantom chest CT as a DICOM series with one nodule (5 mm slices: the detector finds it)."""
    from radscribe.data.phantom import make_phantom, write_dicom_series

    ph = make_phantom(0, shape=(24, 128, 128), n_nodules=1, spacing=(5.0, 2.8, 2.8))
    return write_dicom_series(ph.volume_hu, ph.spacing, ph.origin, tmp_path_factory.mktemp("phantom"), seed=0)


def test_page_has_upload_form_and_is_self_contained(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert '<form id="upload-form" action="/v1/studies"' in html
    assert 'type="file" multiple' in html and "webkitdirectory" in html
    assert "src=\"http" not in html and "href=\"http" not in html and "//cdn" not in html  # works offline
    assert "default-src 'self'" in r.headers["content-security-policy"]


def test_health_and_openapi(client):
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["version"]
    names = {d["name"] for d in h["detectors"]}
    assert "lung-nodule-classic" in names and "cxr-pneumonia" in names
    assert h["queue_length"] == 0 and h["limits"]["max_upload_mib"] == 1024 and h["auth"] == "open"
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/v1/studies", "/v1/studies/{job_id}", "/v1/studies/{job_id}/overlays/{name}"} <= set(paths)
    assert "multipart/form-data" in paths["/v1/studies"]["post"]["requestBody"]["content"]


@pytest.fixture(scope="module")
def png_job(client) -> dict:
    """A synthetic PNG (no header) uploaded and analysed; the finished job's status JSON."""
    r = _post(client, [("chest.png", _png_bytes())])
    assert r.status_code == 202, r.text
    created = r.json()
    assert created["status"] == "queued" and r.headers["location"] == f"/v1/studies/{created['job_id']}"
    assert created["links"] == {"self": f"/v1/studies/{created['job_id']}"} and created["duplicate"] is False
    return _wait(client, created["job_id"])


def test_png_upload_is_analysed_and_served(client, work, png_job):
    job = png_job
    assert job["status"] == "done", job
    validate_findings(job["analysis"])
    assert job["analysis"]["study"]["source_format"] == "png"
    assert job["input"] == {"files": 1, "bytes": len(_png_bytes()), "zip": False}  # no uploaded names kept
    jid = job["job_id"]

    md = client.get(f"/v1/studies/{jid}/report.md")
    assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
    assert "## Findings" in md.text and job["analysis"]["report"]["impression"].strip() in md.text
    assert client.get(f"/v1/studies/{jid}/findings.json").json() == job["analysis"]
    assert client.get(f"/v1/studies/{jid}/report.fhir.json").json()["resourceType"] == "DiagnosticReport"
    assert job["links"]["overlays"], job["links"]
    png = client.get(job["links"]["overlays"][0])
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    sr = client.get(f"/v1/studies/{jid}/report.sr.dcm")  # a PNG has no DICOM evidence, so no SR
    assert sr.status_code == 404 and "only DICOM inputs" in sr.json()["error"]
    assert not (work / "jobs" / jid / "input").exists()  # the upload is deleted after analysis
    again = _post(client, [("other-name.png", _png_bytes())])  # same content, same options: the same job
    assert again.status_code == 200 and again.json()["job_id"] == jid and again.json()["duplicate"] is True
    assert again.json()["status"] == "done"


def test_file_routes_never_leave_the_job_output(client, work, png_job):
    jid = png_job["job_id"]
    (out,) = (work / "jobs" / jid).glob("out-*")
    (work / "jobs" / jid / "secret.json").write_text("{}")
    (out / "overlays" / "evil.png").symlink_to(work / "jobs" / jid / "secret.json")  # a link pointing outside
    for url in [f"/v1/studies/{jid}/secret.json",                     # in the job folder, not an artifact
                f"/v1/studies/{jid}/..%2Fsecret.json",
                f"/v1/studies/{jid}/overlays/..%2F..%2Fsecret.json",
                f"/v1/studies/{jid}/overlays/%2e%2e%2ffindings.json",
                f"/v1/studies/{jid}/overlays/evil.png",
                "/v1/studies/..%2F..%2F..%2Fetc/report.md",
                f"/v1/studies/{jid}%2F..%2F{jid}/report.md"]:
        resp = client.get(url)
        assert resp.status_code == 404, (url, resp.status_code, resp.text[:200])
        assert "error" in resp.json()


@pytest.mark.parametrize("as_zip", [False, True], ids=["files", "zip"])
def test_dicom_series_gives_chest_ct_and_sr(client, phantom_files, as_zip):
    import pydicom

    if as_zip:
        files = [("series.zip", _zip({f"study/ct/{p.name}": p.read_bytes() for p in phantom_files}))]
    else:
        files = [(p.name, p.read_bytes()) for p in phantom_files]
    # other options than the plain upload's, else it would be the same study and the same job (idempotent)
    r = _post(client, files, models="lung-nodule-classic" if as_zip else "auto")
    assert r.status_code == 202, r.text
    job = _wait(client, r.json()["job_id"])
    assert job["status"] == "done", job
    a = job["analysis"]
    validate_findings(a)
    assert (a["study"]["modality"], a["study"]["body_region"]) == ("CT", "chest")
    assert a["study"]["shape"] == [24, 128, 128] and "lung-nodule-classic" in a["detectors_run"]
    assert any(f["kind"] == "nodule" and f["present"] for f in a["findings"])
    assert job["input"]["files"] == len(phantom_files)
    assert job["input"]["zip"] is as_zip
    sr = client.get(job["links"]["report.sr.dcm"])
    assert sr.status_code == 200 and sr.headers["content-type"] == "application/dicom"
    ds = pydicom.dcmread(io.BytesIO(sr.content))
    assert ds.Modality == "SR"


def test_text_file_fails_the_job_with_one_line(client, work):
    r = _post(client, [("notes.txt", b"hello, this is not an image")])
    assert r.status_code == 202
    job = _wait(client, r.json()["job_id"])
    assert job["status"] == "failed" and job["error_kind"] == "input"
    assert "notes" not in job["error"] and "not in a format" in job["error"]  # the uploaded name is not kept
    assert "\n" not in job["error"] and str(work) not in job["error"] and "/" not in job["error"]
    miss = client.get(f"/v1/studies/{job['job_id']}/report.md")
    assert miss.status_code == 404 and "failed" in miss.json()["error"]


@pytest.mark.parametrize("entry", ["../evil.dcm", "a/../../evil.dcm", "/etc/evil.dcm", "C:\\evil.dcm"])
def test_zip_escaping_the_folder_is_refused(client, work, entry):
    before = set((work / "jobs").iterdir())
    r = _post(client, [("s.zip", _zip({"ok.dcm": b"x" * 10, entry: b"y" * 10}))])
    assert r.status_code == 400 and "zip entry 2 points outside the upload folder" in r.json()["error"]
    assert "evil" not in r.json()["error"]
    assert set((work / "jobs").iterdir()) == before  # the refused upload left nothing behind
    assert not (work / "evil.dcm").exists() and not (work / "jobs" / "evil.dcm").exists()


def test_bad_uploads_get_4xx_with_one_line(client):
    cases = [
        (client.post("/v1/studies", files={"writer": (None, "structured")}), 400, "holds no file"),
        (_post(client, [("empty.dcm", b"")]), 400, "empty"),
        (client.post("/v1/studies", content=b"raw", headers={"content-type": "application/octet-stream"}), 415,
         "multipart/form-data"),
        (_post(client, [("a.png", _png_bytes())], models="nodule-magic"), 400, "unknown model"),
        (_post(client, [("a.zip", b"PK\x03\x04 not really a zip")]), 400, "not a readable zip"),
        (_post(client, [("a.zip", _zip({"x": b"1"})), ("b.png", b"2")]), 400, "zip alone"),
        (_post(client, [("a.png", _png_bytes())], writer="shakespeare"), 400, "unknown report writer"),
        (_post(client, [("a.png", _png_bytes())], writer="x" * (10 * MIB)), 400, "longer than 1024 bytes"),
        (_post(client, [("a.zip", _zip({"a/b/../../../x.dcm": b"1"}))]), 400, "outside the upload folder"),
    ]
    for resp, status, needle in cases:
        assert resp.status_code == status, resp.text
        assert set(resp.json()) == {"error"} and needle in resp.json()["error"] and "\n" not in resp.json()["error"]
    assert client.get("/health").json()["status"] == "ok"  # the server stays up
    assert client.app.state.store.counts()["receiving"] == 0


def test_limits_refuse_bombs_and_oversized_uploads(tmp_path):
    limits = Limits(max_upload_bytes=1 * MIB, max_files=3, max_unpacked_bytes=2 * MIB, min_free_bytes=0)
    with TestClient(create_app(tmp_path, limits=limits)) as c:
        bomb = _zip({"zeros.dcm": bytes(3 * MIB)})  # ~3 KB compressed, 3 MiB unpacked
        assert len(bomb) < 64 * 1024
        r = _post(c, [("bomb.zip", bomb)])
        assert r.status_code == 413 and "unpacks to more than 2 MiB" in r.json()["error"]
        r = _post(c, [(f"{i}.dcm", b"x") for i in range(4)])
        assert r.status_code == 413 and "more than 3 files" in r.json()["error"]
        r = _post(c, [("many.zip", _zip({f"{i}.dcm": b"x" for i in range(4)}))])
        assert r.status_code == 413 and "holds 4 files" in r.json()["error"]
        r = _post(c, [("big.dcm", np.random.default_rng(0).bytes(2 * MIB))])
        assert r.status_code == 413 and "larger than 1 MiB" in r.json()["error"]
        assert list((tmp_path / "jobs").iterdir()) == []
        assert c.app.state.store.counts()["receiving"] == 0  # every refused upload gave its queue slot back


def test_unknown_job_is_404(client):
    for method, url in [("get", "/v1/studies/" + "0" * 32), ("get", "/v1/studies/nope/report.md"),
                        ("delete", "/v1/studies/" + "f" * 32), ("get", "/v1/studies/" + "0" * 32 + "/overlays/a.png")]:
        r = getattr(client, method)(url)
        assert r.status_code == 404 and "no job" in r.json()["error"]


def test_delete_removes_the_job(client, work):
    job = _wait(client, _post(client, [("d.txt", b"not an image, to delete")]).json()["job_id"])
    r = client.delete(f"/v1/studies/{job['job_id']}")
    assert r.status_code == 200 and r.json() == {"job_id": job["job_id"], "deleted": True, "status_was": "failed"}
    assert client.get(f"/v1/studies/{job['job_id']}").status_code == 404
    assert not (work / "jobs" / job["job_id"]).exists()


class _GatedSession:
    """A stand-in analysis session that waits on an event; it fails for bad/bug uploads (by content)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.calls: list[Path] = []

    def analyze(self, path, out, **kw):
        self.calls.append(Path(path))
        self.gate.wait(10)
        data = Path(path).read_bytes()
        if data == b"bad":
            raise UnreadableFileError(f"{path} is truncated; re-export it")
        if data == b"bug":
            raise ZeroDivisionError(f"boom in {path}")
        out.mkdir()
        (out / "report.md").write_text("# ok\n")


def test_job_store_states_queue_and_restart(tmp_path):
    """With a stand-in analysis that waits on an event: queued/running states, 409s, delete, restart."""
    session = _GatedSession()
    app = create_app(tmp_path)
    store = app.state.store
    with TestClient(app) as c, worker_thread(store, session=session):
        ids = [_post(c, [(f"{n}.png", n.encode())]).json()["job_id"] for n in ("ok", "bad", "bug", "del")]
        deadline = time.monotonic() + 10
        while c.get(f"/v1/studies/{ids[0]}").json()["status"] != "running" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [c.get(f"/v1/studies/{i}").json()["status"] for i in ids] == ["running", "queued", "queued", "queued"]
        assert c.get(f"/v1/studies/{ids[2]}").json()["jobs_ahead"] == 2
        assert c.get("/health").json()["queue_length"] == 3
        assert c.get(f"/v1/studies/{ids[0]}/report.md").status_code == 409
        assert c.delete(f"/v1/studies/{ids[0]}").status_code == 409          # running: cannot delete
        assert c.delete(f"/v1/studies/{ids[3]}").json()["status_was"] == "queued"
        session.gate.set()
        end = time.monotonic() + 10
        while store.counts()["queued"] + store.counts()["running"] and time.monotonic() < end:
            time.sleep(0.02)
        done, bad, bug = (c.get(f"/v1/studies/{i}").json() for i in ids[:3])
        assert done["status"] == "done" and c.get(f"/v1/studies/{ids[0]}/report.md").text == "# ok\n"
        assert bad["status"] == "failed" and bad["error"] == "f0001.png is truncated; re-export it"
        assert bug["error_kind"] == "internal" and "ZeroDivisionError: boom in f0001.png" in bug["error"]
        assert str(tmp_path) not in bug["error"]
        assert len(session.calls) == 3  # the deleted queued job never ran
        # a failed study may be sent again (a new job); a done one returns the same job
        assert _post(c, [("x.png", b"bad")]).json()["job_id"] != ids[1]
        assert _post(c, [("x.png", b"ok")]).json()["job_id"] == ids[0]

    # a job left "running" by a dead worker (lease run out) is given back and done on the next start
    import sqlalchemy as sa

    from radscribe.serve.jobs import jobs_table

    jid = ids[0]
    with store.engine.begin() as conn:
        conn.execute(jobs_table.update().where(jobs_table.c.job_id == jid).values(
            status="running", claim="dead", worker="gone", lease_until=time.time() - 1, result=None))
    (tmp_path / "jobs" / jid / "input").mkdir()
    (tmp_path / "jobs" / jid / "input" / "f0001.png").write_bytes(b"ok")
    app2 = create_app(tmp_path)
    with TestClient(app2) as c2, worker_thread(app2.state.store, session=_GatedSession()) as w:
        w.session.gate.set()
        assert _wait(c2, jid, 10)["status"] == "done"
        assert app2.state.store.get(jid).attempts == 2 and sa is not None


def test_keep_uploads_keeps_the_input(tmp_path):
    class Touch:
        def analyze(self, path, out, **kw):
            out.mkdir()

    app = create_app(tmp_path, keep_uploads=True)
    with TestClient(app) as c, worker_thread(app.state.store, session=Touch()):
        jid = _post(c, [("a.png", b"img"), ("b.png", b"img2")]).json()["job_id"]
        assert _wait(c, jid, 10)["input"]["bytes"] == 7
    assert sorted(p.name for p in (tmp_path / "jobs" / jid / "input").iterdir()) == ["f0001.png", "f0002.png"]


def test_serve_command_defaults_to_localhost():
    from radscribe.cli import COMMANDS, build_parser

    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.keep_uploads, args.workers) == ("127.0.0.1", 8000, False, 1)
    assert COMMANDS["serve"] == "radscribe.serve.app:cli_serve"
