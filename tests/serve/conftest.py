"""Shared helpers for the serve tests: a worker thread beside a TestClient, uploads, synthetic studies."""

from __future__ import annotations

import contextlib
import io
import threading
import time
import zipfile
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image as PILImage

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart")
pytest.importorskip("sqlalchemy")


@contextlib.contextmanager
def worker_thread(store, session=None, **kw) -> Iterator[object]:
    """A :class:`radscribe.serve.worker.Worker` claiming jobs from ``store`` in a thread until the block ends."""
    from radscribe.serve.worker import Worker

    w = Worker(store, session=session, poll_s=0.02, **kw)
    t = threading.Thread(target=w.run, daemon=True)
    t.start()
    try:
        yield w
    finally:
        w.stop.set()
        t.join(30)


def wait_job(client, job_id: str, timeout: float = 120.0, headers: dict | None = None) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = client.get(f"/v1/studies/{job_id}", headers=headers or {})
        if r.status_code == 429:  # polled faster than the rate limit refills: wait as told
            time.sleep(float(r.headers["retry-after"]))
            continue
        assert r.status_code == 200, r.text
        body = r.json()
        if body["status"] in ("done", "failed"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def post(client, files: list[tuple[str, bytes]], headers: dict | None = None, **fields: str):
    return client.post("/v1/studies", files=[("files", (n, b, "application/octet-stream")) for n, b in files],
                       data=fields, headers=headers or {})


def png_bytes(seed: int = 0, size: int = 96) -> bytes:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    img = (120 + 80 * np.sin(x / 9.0) * np.cos(y / 13.0) + rng.normal(0, 8, (size, size))).clip(0, 255)
    buf = io.BytesIO()
    PILImage.fromarray(img.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


class ServerProcess:
    """``radscribe serve`` as a real process (its own process group) on a free loopback port."""

    def __init__(self, work, *args: str, env: dict | None = None):
        import os
        import socket
        import subprocess
        import sys

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(work / f"server-{self.port}.log", "ab")  # noqa: SIM115 - closed in stop()
        full_env = {**os.environ, "PYTHONPATH": str(__import__("pathlib").Path(__file__).parents[2]), **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "radscribe", "serve", "--port", str(self.port),
                                      "--work-dir", str(work), *args], stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL, env=full_env, start_new_session=True)
        self.pgid = self.proc.pid

    def wait_ready(self, timeout: float = 60.0) -> "ServerProcess":
        import httpx

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("server did not start")

    def kill9(self) -> None:
        import os
        import signal

        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """Kill this server's process group (the server and the workers it started)."""
        import os
        import signal

        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        self.log.close()
