"""The job table on a real PostgreSQL (Debian package postgresql, a throwaway cluster on a loopback port):
the same atomic reserve / claim / fenced finish as on SQLite, under threads."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
pytestmark = pytest.mark.skipif(not BIN, reason="needs the Debian package postgresql")
pytest.importorskip("psycopg")


def _as_postgres() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and there is no 'postgres' user to run the server")
    return ["runuser", "-u", "postgres", "--"]


@pytest.fixture()
def pg_url(tmp_path):
    bindir = os.path.dirname(BIN[-1])
    sudo = _as_postgres()
    # the server's own folder, outside pytest's root-only tmp tree so that the postgres user can reach it
    data = Path(tempfile.mkdtemp(prefix="radscribe-pg-")) / "pg"
    data.mkdir()
    if sudo:
        shutil.chown(data.parent, "postgres")
        shutil.chown(data, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run([*sudo, f"{bindir}/initdb", "-D", str(data), "-U", "radscribe", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    subprocess.run([*sudo, f"{bindir}/pg_ctl", "-D", str(data), "-l", str(data / "log"), "-w", "-t", "60", "-o",
                    f"-c listen_addresses=127.0.0.1 -p {port} -k {data}", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://radscribe@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*sudo, f"{bindir}/pg_ctl", "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(data.parent, ignore_errors=True)


def test_job_table_on_postgresql(tmp_path, pg_url):
    from radscribe.serve.jobs import JobStore

    store = JobStore(tmp_path / "work", pg_url)
    assert store.engine.dialect.name == "postgresql"
    slots: list[str | None] = []
    lock = threading.Lock()

    def reserve() -> None:
        jid = store.reserve(owner="", max_queued=5)
        with lock:
            slots.append(jid)

    threads = [threading.Thread(target=reserve) for _ in range(12)]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    granted = [j for j in slots if j]
    assert len(granted) == 5  # never more slots than the limit, even concurrently
    for k, jid in enumerate(granted):
        store.submit(jid, dedup_key=f"k{k}", writer="structured", models="auto", n_files=1, n_bytes=1)
    dup = store.reserve(owner="", max_queued=10)
    job, is_dup = store.submit(dup, dedup_key="k0", writer="structured", models="auto", n_files=1, n_bytes=1)
    assert is_dup and job.job_id == granted[0]
    claimed: list[str] = []

    def grab(w: int) -> None:
        while (j := store.claim(f"w{w}", 30)) is not None:
            with lock:
                claimed.append(j.job_id)
            assert store.finish(j.job_id, j.claim, status="done")
            assert not store.finish(j.job_id, j.claim, status="done")

    workers = [threading.Thread(target=grab, args=(w,)) for w in range(4)]
    [t.start() for t in workers]
    [t.join(60) for t in workers]
    assert sorted(claimed) == sorted(granted)
    assert store.counts()["done"] == 5
    t0 = time.time()
    assert store.expire(keep_days=0) == 5 and time.time() - t0 < 30
