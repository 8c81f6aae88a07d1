"""Worker and job-table rules without HTTP: atomic claims, fenced completion, adoption of a finished output,
give-back of a dead worker's job, a job that kills its worker every time, retention."""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa

from radscribe.serve.jobs import JobStore, jobs_table
from radscribe.serve.worker import Worker


class _Counting:
    def __init__(self) -> None:
        self.calls = 0

    def analyze(self, path, out, **kw):
        self.calls += 1
        out.mkdir()
        (out / "findings.json").write_text("{}")


def _queued(store: JobStore, payload: bytes = b"img") -> str:
    jid = store.reserve(owner="", max_queued=100)
    (store.input_dir(jid) / "f0001.png").write_bytes(payload)
    store.submit(jid, dedup_key=None, writer="structured", models="auto", n_files=1, n_bytes=len(payload))
    return jid


def _set(store: JobStore, jid: str, **values) -> None:
    with store.engine.begin() as c:
        c.execute(jobs_table.update().where(jobs_table.c.job_id == jid).values(**values))


def test_claims_are_exclusive_under_threads(tmp_path):
    store = JobStore(tmp_path)
    ids = {_queued(store, bytes([k])) for k in range(30)}
    got: list[str] = []
    lock = threading.Lock()

    def grab(w: int) -> None:
        while (job := store.claim(f"w{w}", 30)) is not None:
            with lock:
                got.append(job.job_id)

    threads = [threading.Thread(target=grab, args=(w,)) for w in range(6)]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    assert sorted(got) == sorted(ids)  # every job claimed exactly once


def test_completion_is_fenced_by_the_claim(tmp_path):
    store = JobStore(tmp_path)
    jid = _queued(store)
    first = store.claim("a", 30)
    _set(store, jid, lease_until=time.time() - 1)        # its worker stalled past the lease
    assert store.give_back() == 1
    second = store.claim("b", 30)
    assert second.claim != first.claim and second.attempts == 2
    assert not store.heartbeat(jid, first.claim, 30)      # the stale worker learns it lost the job
    assert not store.finish(jid, first.claim, status="done", result="out-x")
    assert store.finish(jid, second.claim, status="done", result="out-y")
    assert not store.finish(jid, second.claim, status="done", result="out-z")  # never twice
    assert store.get(jid).result == "out-y"


def test_a_finished_output_is_adopted_not_analysed_again(tmp_path):
    store = JobStore(tmp_path)
    jid = _queued(store)
    job = store.claim("dead", 30)
    out = store.folder(jid) / f"out-{job.claim}"          # the analysis finished, the worker died before recording
    out.mkdir()
    (out / "findings.json").write_text("{}")
    (store.folder(jid) / ".out-partial.tmp-1").mkdir()     # and an unfinished one of another attempt
    store.give_back(worker="dead")
    session = _Counting()
    w = Worker(store, session=session)
    w.run_job(store.claim("w", 30))
    done = store.get(jid)
    assert done.status == "done" and session.calls == 0
    assert [p.name for p in store.folder(jid).iterdir()] == [done.result]  # input removed, partial gone


def test_a_job_that_kills_its_worker_fails_after_three_tries(tmp_path):
    store = JobStore(tmp_path)
    jid = _queued(store)
    for k in range(3):
        assert store.claim(f"w{k}", 30).job_id == jid
        store.give_back(worker=f"w{k}")
    job = store.get(jid)
    assert job.status == "failed" and "stopped its worker 3 times" in job.error
    jid2 = _queued(store, b"other")
    store.claim("w", 30)
    store.give_back(worker="w", charge=False)              # an orderly stop does not count
    assert store.get(jid2).attempts == 0 and store.get(jid2).status == "queued"


def test_retention_deletes_old_finished_jobs_only(tmp_path):
    store = JobStore(tmp_path)
    old, new, waiting = _queued(store, b"1"), _queued(store, b"2"), _queued(store, b"3")
    for jid, age in ((old, 10), (new, 0.5)):
        job = store.claim("w", 30)
        store.finish(job.job_id, job.claim, status="done")
        _set(store, job.job_id, finished=time.time() - age * 86400)
    assert store.expire(keep_days=7) == 1
    assert store.get(old) is None and not store.folder(old).exists()
    assert store.get(new).status == "done" and store.get(waiting).status == "queued"
    with store.engine.connect() as c:
        assert c.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
