"""Real server and worker processes on loopback: kill -9 of a worker or of the server loses no accepted job and
completes none twice; a crash mid-upload leaves nothing behind after restart; concurrent uploads never pass the
queue limit. The analysis is a slow stand-in (tests/serve/fake_session.py) so a kill lands mid-analysis; one
test runs the real analysis of a PNG in a worker process."""

from __future__ import annotations

import collections
import socket
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.serve.conftest import ServerProcess, png_bytes

psutil = pytest.importorskip("psutil")

FAKE = "tests.serve.fake_session:factory"


def _submit(url: str, payload: bytes, name: str = "s.png") -> httpx.Response:
    return httpx.post(url + "/v1/studies", files={"files": (name, payload, "application/octet-stream")}, timeout=30)


def _statuses(work) -> dict[str, str]:
    with sqlite3.connect(work / "jobs.db") as c:
        return dict(c.execute("SELECT job_id, status FROM jobs"))


def _wait_all_final(work, ids: list[str], timeout: float) -> dict[str, str]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        st = _statuses(work)
        if all(st.get(i) in ("done", "failed") for i in ids):
            return st
        time.sleep(0.2)
    return _statuses(work)


def _workers(server: ServerProcess) -> list:
    return [p for p in psutil.Process(server.proc.pid).children() if "radscribe.serve.worker" in " ".join(p.cmdline())]


def _running(work) -> list[str]:
    return [j for j, s in _statuses(work).items() if s == "running"]


def _wait_running(work, timeout: float = 30) -> list[str]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if r := _running(work):
            return r
        time.sleep(0.05)
    raise AssertionError("no job started running")


@pytest.mark.parametrize("victim", ["worker", "server"])
def test_kill9_loses_no_job_and_completes_none_twice(tmp_path, victim):
    log = tmp_path / "completions.log"
    env = {"RADSCRIBE_SESSION_FACTORY": FAKE, "FAKE_SESSION_LOG": str(log), "FAKE_SESSION_SLEEP": "1.0"}
    servers = [ServerProcess(tmp_path, "--workers", "1", env=env).wait_ready()]
    try:
        ids = []
        for k in range(4):
            r = _submit(servers[0].url, png_bytes(k, 32))
            assert r.status_code == 202, r.text
            ids.append(r.json()["job_id"])
        _wait_running(tmp_path)
        if victim == "worker":
            (w,) = _workers(servers[0])
            w.kill()                       # SIGKILL mid-analysis: the supervisor gives the job back at once
        else:
            servers[0].kill9()             # the worker finishes the job it holds, then exits
            servers.append(ServerProcess(tmp_path, "--workers", "1", env=env).wait_ready())
        final = _wait_all_final(tmp_path, ids, 60)
        assert all(final[i] == "done" for i in ids), final
        lines = log.read_text().split()
        assert len(lines) == len(ids) and len(set(lines)) == len(ids), collections.Counter(lines)  # once each
        with sqlite3.connect(tmp_path / "jobs.db") as c:
            attempts = dict(c.execute("SELECT job_id, attempts FROM jobs"))
        if victim == "worker":
            assert sorted(attempts.values()) == [1, 1, 1, 2]  # the killed job ran again, the others once
        for i in ids:  # every result is served, from one output folder
            r = httpx.get(f"{servers[-1].url}/v1/studies/{i}/report.md", timeout=10)
            assert r.status_code == 200 and r.text.startswith("# fake")
            assert len(list((tmp_path / "jobs" / i).glob("out-*"))) == 1
    finally:
        for s in servers:
            s.stop()


def test_crash_mid_upload_is_cleaned_on_restart(tmp_path):
    server = ServerProcess(tmp_path, "--workers", "0").wait_ready()
    try:
        body_head = (b"--BOUND\r\nContent-Disposition: form-data; name=\"files\"; filename=\"Doe_John.dcm\"\r\n"
                     b"Content-Type: application/octet-stream\r\n\r\n" + b"x" * 200_000)
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(b"POST /v1/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
                     b"boundary=BOUND\r\nContent-Length: 5000000\r\n\r\n" + body_head)
        end = time.monotonic() + 10
        while time.monotonic() < end and not any((tmp_path / "jobs").glob("*/input/*")):
            time.sleep(0.05)
        assert any((tmp_path / "jobs").glob("*/input/*")), "the upload never reached the job folder"
        assert list(_statuses(tmp_path).values()) == ["receiving"]
        server.kill9()
        sock.close()
        (tmp_path / "jobs" / ("ab" * 16)).mkdir()            # a folder without any row
        server.stop()
        server = ServerProcess(tmp_path, "--workers", "0").wait_ready()
        assert list((tmp_path / "jobs").iterdir()) == [] and _statuses(tmp_path) == {}
    finally:
        server.stop()


def test_concurrent_uploads_never_pass_the_queue_limit(tmp_path):
    server = ServerProcess(tmp_path, "--workers", "0", "--max-queued", "8").wait_ready()
    try:
        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(lambda k: _submit(server.url, png_bytes(k, 64)), range(24)))
        codes = collections.Counter(r.status_code for r in answers)
        assert codes == {202: 8, 503: 16}, codes
        busy = next(r for r in answers if r.status_code == 503)
        assert "8 jobs are already waiting" in busy.json()["error"] and busy.headers["retry-after"] == "30"
        st = _statuses(tmp_path)
        assert collections.Counter(st.values()) == {"queued": 8}
        assert sorted(p.name for p in (tmp_path / "jobs").iterdir()) == sorted(st)  # refused ones left nothing
    finally:
        server.stop()


def test_real_analysis_in_a_worker_process(tmp_path):
    """The worker's own session (the real analysis), two PNG studies: the second is served warm."""
    server = ServerProcess(tmp_path, "--workers", "1").wait_ready()
    try:
        elapsed = []
        for k in range(2):
            r = _submit(server.url, png_bytes(k))
            assert r.status_code == 202, r.text
            jid = r.json()["job_id"]
            (st,) = _wait_all_final(tmp_path, [jid], 180).get(jid, "missing"),
            assert st == "done", st
            job = httpx.get(f"{server.url}/v1/studies/{jid}", timeout=10).json()
            assert job["analysis"]["study"]["source_format"] == "png"
            elapsed.append(job["elapsed_s"])
        assert elapsed[1] < elapsed[0]  # models loaded once, by the first job
    finally:
        server.stop()
