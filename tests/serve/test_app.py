"""radscribe serve: upload -> job -> findings / report / FHIR / SR over HTTP, and every refusal path."""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart")
from fastapi.testclient import TestClient  # noqa: E402

from radscribe.errors import UnreadableFileError  # noqa: E402
from radscribe.findings.schema import validate_findings  # noqa: E402
from radscribe.serve.app import create_app  # noqa: E402
from radscribe.serve.jobs import JobStore  # noqa: E402
from radscribe.serve.upload import MIB, Limits  # noqa: E402


def _wait(client: TestClient, job_id: str, timeout: float = 120.0) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = client.get(f"/v1/studies/{job_id}")
        assert r.status_code == 200, r.text
        body = r.json()
        if body["status"] in ("done", "failed"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def _post(client: TestClient, files: list[tuple[str, bytes]], **fields: str):
    return client.post("/v1/studies", files=[("files", (n, b, "application/octet-stream")) for n, b in files],
                       data=fields)


def _png_bytes(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:96, :96]
    img = (120 + 80 * np.sin(x / 9.0) * np.cos(y / 13.0) + rng.normal(0, 8, (96, 96))).clip(0, 255).astype(np.uint8)
    buf = io.BytesIO()
    PILImage.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="module")
def client(work):
    with TestClient(create_app(work)) as c:
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
    assert h["queue_length"] == 0 and h["limits"]["max_upload_mib"] == 1024
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
    assert created["links"] == {"self": f"/v1/studies/{created['job_id']}"}
    return _wait(client, created["job_id"])


def test_png_upload_is_analysed_and_served(client, work, png_job):
    job = png_job
    assert job["status"] == "done", job
    validate_findings(job["analysis"])
    assert job["analysis"]["study"]["source_format"] == "png" and job["input"]["names"] == ["chest.png"]
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


def test_file_routes_never_leave_the_job_output(client, work, png_job):
    jid = png_job["job_id"]
    out = work / "jobs" / jid / "out"
    (out / "overlays" / "evil.png").symlink_to(work / "jobs" / jid / "job.json")  # a link pointing outside
    for url in [f"/v1/studies/{jid}/job.json",                        # in the job folder, not an artifact
                f"/v1/studies/{jid}/..%2Fjob.json",
                f"/v1/studies/{jid}/overlays/..%2F..%2Fjob.json",
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
    r = _post(client, files, models="auto")
    assert r.status_code == 202, r.text
    job = _wait(client, r.json()["job_id"])
    assert job["status"] == "done", job
    a = job["analysis"]
    validate_findings(a)
    assert (a["study"]["modality"], a["study"]["body_region"]) == ("CT", "chest")
    assert a["study"]["shape"] == [24, 128, 128] and "lung-nodule-classic" in a["detectors_run"]
    assert any(f["kind"] == "nodule" and f["present"] for f in a["findings"])
    assert job["input"]["files"] == len(phantom_files)
    assert job["input"]["unpacked_zip"] == ("series.zip" if as_zip else None)
    sr = client.get(job["links"]["report.sr.dcm"])
    assert sr.status_code == 200 and sr.headers["content-type"] == "application/dicom"
    ds = pydicom.dcmread(io.BytesIO(sr.content))
    assert ds.Modality == "SR"


def test_text_file_fails_the_job_with_one_line(client, work):
    r = _post(client, [("notes.txt", b"hello, this is not an image")])
    assert r.status_code == 202
    job = _wait(client, r.json()["job_id"])
    assert job["status"] == "failed" and job["error_kind"] == "input"
    assert "notes.txt" in job["error"] and "not in a format" in job["error"]
    assert "\n" not in job["error"] and str(work) not in job["error"]  # no server paths leak
    miss = client.get(f"/v1/studies/{job['job_id']}/report.md")
    assert miss.status_code == 404 and "failed" in miss.json()["error"]


@pytest.mark.parametrize("entry", ["../evil.dcm", "a/../../evil.dcm", "/etc/evil.dcm", "C:\\evil.dcm"])
def test_zip_escaping_the_folder_is_refused(client, work, entry):
    before = set((work / "jobs").iterdir())
    r = _post(client, [("s.zip", _zip({"ok.dcm": b"x" * 10, entry: b"y" * 10}))])
    assert r.status_code == 400 and "outside the upload folder" in r.json()["error"]
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
    ]
    for resp, status, needle in cases:
        assert resp.status_code == status, resp.text
        assert set(resp.json()) == {"error"} and needle in resp.json()["error"]


def test_limits_refuse_bombs_and_oversized_uploads(tmp_path):
    limits = Limits(max_upload_bytes=1 * MIB, max_files=3, max_unpacked_bytes=2 * MIB)
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


def test_unknown_job_is_404(client):
    for method, url in [("get", "/v1/studies/" + "0" * 32), ("get", "/v1/studies/nope/report.md"),
                        ("delete", "/v1/studies/" + "f" * 32), ("get", "/v1/studies/" + "0" * 32 + "/overlays/a.png")]:
        r = getattr(client, method)(url)
        assert r.status_code == 404 and "no job" in r.json()["error"]


def test_delete_removes_the_job(client, work):
    job = _wait(client, _post(client, [("d.txt", b"not an image")]).json()["job_id"])
    r = client.delete(f"/v1/studies/{job['job_id']}")
    assert r.status_code == 200 and r.json() == {"job_id": job["job_id"], "deleted": True, "status_was": "failed"}
    assert client.get(f"/v1/studies/{job['job_id']}").status_code == 404
    assert not (work / "jobs" / job["job_id"]).exists()


def test_job_store_states_queue_and_restart(tmp_path):
    """With a stand-in analysis that waits on an event: queued/running states, 409s, delete, restart."""
    gate = threading.Event()
    calls: list[Path] = []

    def fake_analyze(path, out, **kw):
        calls.append(path)
        gate.wait(10)
        if Path(path).name == "bad.png":
            raise UnreadableFileError(f"{path} is truncated; re-export it")
        if Path(path).name == "bug.png":
            raise ZeroDivisionError("boom")
        out.mkdir()
        (out / "report.md").write_text("# ok\n")

    store = JobStore(tmp_path, analyze_fn=fake_analyze)
    with TestClient(create_app(tmp_path, store=store)) as c:
        ids = [_post(c, [(n, b"img")]).json()["job_id"] for n in ("a.png", "bad.png", "bug.png", "d.png")]
        deadline = time.monotonic() + 10
        while c.get(f"/v1/studies/{ids[0]}").json()["status"] != "running" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [c.get(f"/v1/studies/{i}").json()["status"] for i in ids] == ["running", "queued", "queued", "queued"]
        assert c.get(f"/v1/studies/{ids[2]}").json()["jobs_ahead"] == 2
        assert c.get("/health").json()["queue_length"] == 3
        assert c.get(f"/v1/studies/{ids[0]}/report.md").status_code == 409
        assert c.delete(f"/v1/studies/{ids[0]}").status_code == 409          # running: cannot delete
        assert c.delete(f"/v1/studies/{ids[3]}").json()["status_was"] == "queued"
        gate.set()
        assert store.wait_idle(10)
        done, bad, bug = (c.get(f"/v1/studies/{i}").json() for i in ids[:3])
        assert done["status"] == "done" and c.get(f"/v1/studies/{ids[0]}/report.md").text == "# ok\n"
        assert bad["status"] == "failed" and bad["error"] == "bad.png is truncated; re-export it"
        assert bug["error_kind"] == "internal" and "ZeroDivisionError: boom" in bug["error"]
        assert len(calls) == 3  # the deleted queued job never ran

    # a job left "queued" by a stopped server is queued again when the store is reopened
    jid = ids[1]
    (tmp_path / "jobs" / jid / "input").mkdir()
    (tmp_path / "jobs" / jid / "input" / "a.png").write_bytes(b"img")
    state = json.loads((tmp_path / "jobs" / jid / "job.json").read_text())
    (tmp_path / "jobs" / jid / "job.json").write_text(json.dumps({**state, "status": "queued", "error": None}))
    reopened = JobStore(tmp_path, analyze_fn=fake_analyze)
    assert reopened.wait_idle(10) and reopened.get(jid).status == "done"
    reopened.close(1)


def test_keep_uploads_keeps_the_input(tmp_path):
    store = JobStore(tmp_path, keep_uploads=True, analyze_fn=lambda path, out, **kw: out.mkdir())
    with TestClient(create_app(tmp_path, store=store)) as c:
        jid = _post(c, [("a.png", b"img"), ("b.png", b"img2")]).json()["job_id"]
        assert store.wait_idle(10) and c.get(f"/v1/studies/{jid}").json()["input"]["bytes"] == 7
    assert sorted(p.name for p in (tmp_path / "jobs" / jid / "input").iterdir()) == ["a.png", "b.png"]


def test_serve_command_defaults_to_localhost():
    from radscribe.cli import COMMANDS, build_parser

    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.keep_uploads) == ("127.0.0.1", 8000, False)
    assert COMMANDS["serve"] == "radscribe.serve.app:cli_serve"
