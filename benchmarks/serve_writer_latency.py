"""Server-side latency of the first and the following jobs of one warm worker, per report writer.

Starts ``radscribe serve --workers 1`` on loopback with a token, submits K real 2D studies one after
another (the first files of the chest X-ray test folder, which route to ``cxr-pneumonia``) with the
given ``--writer``, waits for each, and reads the job table's ``elapsed_s`` (analysis time in the
worker, model loading included for whatever the session had not loaded yet). The first job pays the
model loads (the language model for ``llm-lora``, ~16 s); the later ones show what a warm worker costs.

    .venv/bin/python benchmarks/serve_writer_latency.py --writer llm-lora --jobs 4 [--json FILE]

Bounded: at most ``--jobs`` (<= 20) submissions to 127.0.0.1, each waited for at most ``--timeout`` s.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import ROOT, Server  # noqa: E402  (the same server wrapper as the load benchmark)

from radscribe.data.paths import dataset_dir  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writer", default="llm-lora")
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if not 2 <= args.jobs <= 20:
        raise SystemExit("error: --jobs must be 2..20")
    # alternate pneumonia / normal radiographs: job 2 is the first warm job with a findings line the session
    # has not written yet (a real generation); from job 3 on, llm-lora's per-prompt cache may answer
    test = dataset_dir("chest_xray_pneumonia") / "test"
    pairs = zip(sorted((test / "PNEUMONIA").glob("*.jpeg")), sorted((test / "NORMAL").glob("*.jpeg")))
    files = [f for pair in pairs for f in pair][: args.jobs]
    work = Path(tempfile.mkdtemp(prefix="radscribe-writer-lat-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = subprocess.run([sys.executable, "-m", "radscribe", "token", "create", "--name", "lat", "--work-dir",
                            str(work)], env=env, capture_output=True, text=True, check=True).stdout.strip()
    server = Server(work, port, ["--workers", "1"], env)
    rows = []
    try:
        server.ready()
        with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {token}"}) as c:
            for k, f in enumerate(files):
                t0 = time.perf_counter()
                r = c.post(server.url + "/v1/studies", files={"files": (f"s{k}.jpeg", f.read_bytes(), "image/jpeg")},
                           data={"writer": args.writer})
                r.raise_for_status()
                job = r.json()["job_id"]
                end = time.monotonic() + args.timeout
                while time.monotonic() < end:
                    st = c.get(f"{server.url}/v1/studies/{job}")
                    if st.status_code == 200 and st.json().get("status") in ("done", "failed"):
                        break
                    time.sleep(0.1)
                status = st.json().get("status")
                with sqlite3.connect(work / "jobs.db") as db:
                    elapsed = db.execute("SELECT elapsed_s FROM jobs WHERE job_id = ?", (job,)).fetchone()
                rows.append({"job": k + 1, "file": f"{f.parent.name}/{f.name}", "status": status, "server_elapsed_s": elapsed[0] if elapsed else None,
                             "client_wall_s": round(time.perf_counter() - t0, 3)})
                print(json.dumps(rows[-1]), flush=True)
    finally:
        server.proc.terminate()
        server.proc.wait(timeout=30)
    later = [r["server_elapsed_s"] for r in rows[1:] if r["server_elapsed_s"] is not None]
    summary = {"writer": args.writer, "jobs": rows, "first_s": rows[0]["server_elapsed_s"],
               "later_median_s": sorted(later)[len(later) // 2] if later else None,
               "load_average": os.getloadavg()}
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
