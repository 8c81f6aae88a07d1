"""Tokens (create once, stored hashed), the /v1 guard, rate limit, Host/Origin checks, CORS, quotas, bind refusal."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from fastapi.testclient import TestClient

from radscribe.cli import main
from radscribe.serve.app import create_app
from radscribe.serve.auth import GuardConfig, RateLimiter, TokenStore
from radscribe.serve.upload import MIB, Limits
from tests.serve.conftest import png_bytes, post, wait_job, worker_thread


def _create(work, name, capsys, *extra: str) -> str:
    assert main(["token", "create", "--name", name, "--work-dir", str(work), *extra]) == 0
    out, err = capsys.readouterr()
    assert "shown only this once" in err
    return out.strip()


def test_token_create_prints_once_and_stores_only_a_salted_hash(tmp_path, capsys):
    token = _create(tmp_path, "pacs-gateway", capsys)
    assert token.startswith("rs_") and len(token) > 50
    raw = (tmp_path / "tokens.json").read_text()
    assert token not in raw and token.split("_", 2)[2] not in raw  # neither the token nor its secret
    (entry,) = json.loads(raw)["tokens"]
    assert entry["name"] == "pacs-gateway" and len(entry["salt"]) == 32 and len(entry["sha256"]) == 64
    assert (tmp_path / "tokens.json").stat().st_mode & 0o077 == 0
    store = TokenStore(tmp_path)
    assert store.verify(token).name == "pacs-gateway"
    assert store.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert main(["token", "create", "--name", "pacs-gateway", "--work-dir", str(tmp_path)]) == 2  # duplicate name
    assert capsys.readouterr().err.startswith("error: a token named")
    assert main(["token", "list", "--work-dir", str(tmp_path)]) == 0
    assert "pacs-gateway" in capsys.readouterr().out
    assert main(["token", "revoke", "--name", "pacs-gateway", "--work-dir", str(tmp_path)]) == 0
    assert TokenStore(tmp_path).verify(token) is None


def test_every_v1_route_needs_the_token(tmp_path, capsys):
    token = _create(tmp_path, "ward-7", capsys)
    other = _create(tmp_path, "research", capsys)
    auth = {"Authorization": f"Bearer {token}"}
    app = create_app(tmp_path)
    with TestClient(app) as c, worker_thread(app.state.store):
        assert c.get("/health").status_code == 200 and c.get("/health").json()["auth"] == "token"
        jid = "0" * 32
        for method, url in [("get", "/v1/studies"), ("get", f"/v1/studies/{jid}"), ("delete", f"/v1/studies/{jid}"),
                            ("get", f"/v1/studies/{jid}/report.md"), ("get", f"/v1/studies/{jid}/overlays/a.png"),
                            ("post", "/v1/studies"), ("get", "/v1/anything")]:
            for headers in ({}, {"Authorization": "Bearer rs_00000000_" + "a" * 43}, {"Authorization": token}):
                r = getattr(c, method)(url, headers=headers)
                assert r.status_code == 401, (method, url, headers, r.status_code)
                assert set(r.json()) == {"error"} and r.headers["www-authenticate"] == "Bearer"
        r = post(c, [("chest.png", png_bytes())], headers=auth)
        assert r.status_code == 202, r.text
        job = wait_job(c, r.json()["job_id"], headers=auth)
        assert job["status"] == "done"
        assert c.get(f"/v1/studies/{job['job_id']}/report.md", headers=auth).status_code == 200
        # another token neither sees nor deletes it, and its listing is its own
        theirs = {"Authorization": f"Bearer {other}"}
        assert c.get(f"/v1/studies/{job['job_id']}", headers=theirs).status_code == 404
        assert c.delete(f"/v1/studies/{job['job_id']}", headers=theirs).status_code == 404
        assert c.get("/v1/studies", headers=theirs).json() == {"jobs": []}
        assert [j["job_id"] for j in c.get("/v1/studies", headers=auth).json()["jobs"]] == [job["job_id"]]
        # the same study from the other token is its own job (no cross-token deduplication)
        r2 = post(c, [("chest.png", png_bytes())], headers=theirs)
        assert r2.status_code == 202 and r2.json()["job_id"] != job["job_id"]


def test_rate_limit_per_token(tmp_path, capsys):
    slow = _create(tmp_path, "slow", capsys, "--rate-per-min", "3")
    fast = _create(tmp_path, "fast", capsys)
    with TestClient(create_app(tmp_path)) as c:
        codes = [c.get("/v1/studies", headers={"Authorization": f"Bearer {slow}"}).status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        r = c.get("/v1/studies", headers={"Authorization": f"Bearer {slow}"})
        assert "rate limit of 3 requests a minute" in r.json()["error"] and int(r.headers["retry-after"]) >= 1
        assert c.get("/v1/studies", headers={"Authorization": f"Bearer {fast}"}).status_code == 200  # own bucket
    lim = RateLimiter()
    assert lim.take("k", 60) == 0 and all(lim.take("k", 60) == 0 for _ in range(59)) and lim.take("k", 60) > 0


def test_foreign_host_and_origin_are_refused_and_cors_is_closed(tmp_path):
    with TestClient(create_app(tmp_path)) as c:
        r = c.get("/health", headers={"Host": "evil.example"})
        assert r.status_code == 421 and "Host" in r.json()["error"]
        r = post(c, [("a.png", png_bytes())], headers={"Origin": "http://evil.example"})
        assert r.status_code == 403 and "cross-site" in r.json()["error"]
        assert list((tmp_path / "jobs").iterdir()) == []  # the blind cross-site upload wrote nothing
        ok = c.get("/health", headers={"Origin": "http://testserver"})  # same origin: the app's own page
        assert ok.status_code == 200 and "access-control-allow-origin" not in ok.headers
        pre = c.options("/v1/studies", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
        assert pre.status_code == 403 and "access-control-allow-origin" not in pre.headers
    guard = GuardConfig(origins=("https://viewer.hospital.example",))
    with TestClient(create_app(tmp_path, guard=guard)) as c:
        r = c.get("/health", headers={"Origin": "https://viewer.hospital.example"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://viewer.hospital.example"


def test_token_disk_quota_and_machine_sized_caps(tmp_path, capsys):
    token = _create(tmp_path, "tiny", capsys, "--quota-mb", "1")
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(tmp_path, limits=Limits(min_free_bytes=0))) as c:
        big = bytes(np.random.default_rng(0).bytes(int(1.5 * MIB)))
        r = post(c, [("a.dcm", big)], headers=auth)
        assert r.status_code == 413 and "larger than 1 MiB" in r.json()["error"]
        assert post(c, [("a.dcm", big[: 700_000])], headers=auth).status_code == 202
        r = post(c, [("b.dcm", big[700_000: 1_400_000])], headers=auth)  # 0.67 MiB held: 0.33 MiB room left
        assert r.status_code == 413, r.text
    lim = Limits.for_machine(tmp_path)
    assert 16 * MIB <= lim.max_unpacked_bytes <= 1024 * MIB and lim.max_upload_bytes <= 1024 * MIB
    assert lim.max_unpacked_bytes < 1024 * MIB or lim.max_zip_ratio <= 100  # a 1 MB -> 1 GiB zip is refused


def test_gigabyte_zip_bomb_is_refused_by_ratio(tmp_path):
    from radscribe.serve.upload import UploadRejected, unpack_zip

    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("zeros.dcm", "w", force_zip64=True) as fh:
            chunk = bytes(16 * MIB)
            for _ in range(16):  # 256 MiB of zeros, ~250 KB compressed
                fh.write(chunk)
    assert archive.stat().st_size < MIB
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UploadRejected, match="zip bomb"):
        unpack_zip(archive, out, Limits(max_unpacked_bytes=4096 * MIB))
    assert list(out.iterdir()) == []


def test_serve_refuses_to_bind_beyond_loopback_without_tokens(tmp_path, capsys):
    assert main(["serve", "--host", "0.0.0.0", "--work-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: refusing to serve on 0.0.0.0 without tokens") and err.count("\n") == 1

