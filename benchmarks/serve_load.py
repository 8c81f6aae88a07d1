"""Load and fault benchmark of ``radscribe serve`` on loopback: C concurrent clients submit N distinct small PNG
studies to a real server with W worker processes; a full queue answers 503 (the client waits and retries).
Optionally a worker is killed with SIGKILL every K seconds and the server once, mid-run (then restarted on the
same work folder). At the end every accepted job must be done or failed, and none analysed twice.

    python benchmarks/serve_load.py --studies 200 --clients 20 --workers 1 [--session real|fake]
        [--kill-worker-every 5] [--kill-server-at 10] [--timeout 900] [--out result.json]

``--session fake`` uses tests/serve/fake_session.py (0.2 s a study, logs each completed analysis, so a
study analysed twice is seen); ``real`` is radscribe's analysis (structured writer). Bounded: at most
``--timeout`` seconds, only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def png(seed: int, size: int = 96) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    img = (120 + 80 * np.sin(x / 9.0) * np.cos(y / 13.0) + rng.normal(0, 8, (size, size))).clip(0, 255)
    buf = io.BytesIO()
    Image.fromarray(img.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


class Server:
    def __init__(self, work: Path, port: int, args: list[str], env: dict):
        self.log = open(work / "server.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "radscribe", "serve", "--port", str(port),
                                      "--work-dir", str(work), *args], stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        self.pgids = [self.proc.pid]
        self.url = f"http://127.0.0.1:{port}"

    def ready(self, timeout: float = 120) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise SystemExit("server did not start")

    def workers(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        return [int(p) for p in out]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=40)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--session", choices=["real", "fake"], default="real")
    ap.add_argument("--max-queued", type=int, default=16)
    ap.add_argument("--kill-worker-every", type=float, default=0.0)
    ap.add_argument("--kill-server-at", type=float, default=0.0)
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="radscribe-load-"))
    completions = work / "completions.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if args.session == "fake":
        env.update(RADSCRIBE_SESSION_FACTORY="tests.serve.fake_session:factory", FAKE_SESSION_LOG=str(completions),
                   FAKE_SESSION_SLEEP="0.2")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv_args = ["--workers", str(args.workers), "--max-queued", str(args.max_queued)]
    token = subprocess.run([sys.executable, "-m", "radscribe", "token", "create", "--name", "load", "--work-dir",
                            str(work), "--rate-per-min", "100000"], env=env, capture_output=True, text=True,
                           check=True).stdout.strip()
    auth = {"Authorization": f"Bearer {token}"}
    server = Server(work, port, srv_args, env)
    server.ready()
    payloads = [png(10_000 + k) for k in range(args.studies)]
    deadline = time.monotonic() + args.timeout
    latencies: list[float] = []
    refused = collections.Counter()
    accepted: dict[int, str] = {}
    lock = threading.Lock()
    t0 = time.perf_counter()

    def submit(k: int) -> None:
        with httpx.Client(timeout=60, headers=auth) as c:
            while time.monotonic() < deadline:
                t = time.perf_counter()
                try:
                    r = c.post(server.url + "/v1/studies", files={"files": (f"s{k}.png", payloads[k], "image/png")})
                except httpx.HTTPError:
                    time.sleep(0.5)  # the server is being restarted
                    refused["connection"] += 1
                    continue
                if r.status_code == 202:
                    with lock:
                        latencies.append(time.perf_counter() - t)
                        accepted[k] = r.json()["job_id"]
                    return
                refused[r.status_code] += 1
                if r.status_code == 503:
                    assert "already waiting" in r.json()["error"], r.text
                time.sleep(0.5)

    kills = {"worker": 0, "server": 0}

    def running() -> bool:
        try:
            with sqlite3.connect(work / "jobs.db", timeout=5) as c:
                return c.execute("SELECT count(*) FROM jobs WHERE status = 'running'").fetchone()[0] > 0
        except sqlite3.Error:
            return False
    stop_chaos = threading.Event()

    def chaos() -> None:
        nonlocal server
        start, last = time.monotonic(), time.monotonic()
        server_killed = False
        while not stop_chaos.wait(0.2):
            now = time.monotonic()
            if args.kill_worker_every and now - last >= args.kill_worker_every and running():
                last = now  # only mid-analysis: a worker that holds a job
                for pid in server.workers()[:1]:
                    os.kill(pid, signal.SIGKILL)
                    kills["worker"] += 1
            if args.kill_server_at and not server_killed and now - start >= args.kill_server_at:
                server_killed = True
                os.kill(server.proc.pid, signal.SIGKILL)
                server.proc.wait()
                kills["server"] += 1
                old = server.pgids
                server = Server(work, port, srv_args, env)
                server.pgids += old
                server.ready()

    chaos_t = threading.Thread(target=chaos, daemon=True)
    chaos_t.start()
    with ThreadPoolExecutor(args.clients) as pool:
        list(pool.map(submit, range(args.studies)))
    t_submitted = time.perf_counter() - t0
    db = work / "jobs.db"

    def statuses() -> dict[str, str]:
        with sqlite3.connect(db) as c:
            return dict(c.execute("SELECT job_id, status FROM jobs"))

    while time.monotonic() < deadline:
        st = statuses()
        if all(st.get(j) in ("done", "failed") for j in accepted.values()):
            break
        time.sleep(0.5)
    t_end = time.perf_counter() - t0
    stop_chaos.set()
    chaos_t.join(10)
    with sqlite3.connect(db) as c:
        rows = list(c.execute("SELECT job_id, status, attempts, elapsed_s, started, finished FROM jobs"))
    by_id = {r[0]: r for r in rows}
    final = collections.Counter(by_id[j][1] if j in by_id else "missing" for j in accepted.values())
    lost = sum(1 for j in accepted.values() if j not in by_id or by_id[j][1] not in ("done", "failed"))
    elapsed = sorted(r[3] for r in rows if r[3] is not None and r[1] == "done")
    twice = None
    if completions.exists():
        twice = sum(1 for n in collections.Counter(completions.read_text().split()).values() if n > 1)
    lat = np.array(latencies) if latencies else np.array([np.nan])
    result = {
        "command": " ".join(["python", "benchmarks/serve_load.py", *(argv or sys.argv[1:])]),
        "studies": args.studies, "clients": args.clients, "workers": args.workers, "session": args.session,
        "accepted": len(accepted), "final": dict(final), "lost": lost, "analysed_twice": twice,
        "reruns_after_kill": sum(1 for r in rows if (r[2] or 0) > 1), "kills": kills,
        "refused": {str(k): v for k, v in refused.items()},
        "submit_latency_s": {"p50": round(float(np.percentile(lat, 50)), 4), "p95": round(float(np.percentile(lat, 95)), 4)},
        "server_job_s": {"p50": round(float(np.percentile(elapsed, 50)), 4) if elapsed else None,
                         "p95": round(float(np.percentile(elapsed, 95)), 4) if elapsed else None,
                         "min": elapsed[0] if elapsed else None},
        "wall_s": round(t_end, 2), "submit_phase_s": round(t_submitted, 2),
        "throughput_studies_per_s": round(final.get("done", 0) / t_end, 3),
        "load_average": os.getloadavg(),
    }
    for pg in set(server.pgids):
        try:
            os.killpg(pg, signal.SIGKILL)
        except ProcessLookupError:
            pass
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return 0 if lost == 0 and not twice and len(accepted) == args.studies else 1


if __name__ == "__main__":
    sys.exit(main())
