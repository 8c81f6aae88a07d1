"""The durable job table (SQLAlchemy: SQLite in WAL mode by default, PostgreSQL by URL) and job folders.

A job is a row in ``jobs`` and a folder ``<work_dir>/jobs/<id>/`` with ``input/`` (the upload, removed
after analysis unless ``keep_uploads``) and ``out-<claim>/`` (what the analysis wrote, moved into place
atomically). States: ``receiving`` (a queue slot reserved while the upload streams) -> ``queued`` ->
``running`` (claimed by one worker, which renews a lease) -> ``done`` | ``failed``.

Every transition is one conditional ``UPDATE`` so that several processes can share the table:
a slot is reserved only while fewer than ``max_queued`` jobs wait; a worker claims a job only if it is
still queued; a job is finished only by the claim that holds it, so a job given back (its worker died or
its lease ran out) and claimed again is never completed twice. Rows keep no uploaded file names and no
patient identifiers (``patient_ref`` is a salted hash).
"""

from __future__ import annotations

import os
import re
import secrets
import time
import uuid
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from radscribe.serve.upload import remove_tree

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
#: Files a done job may serve from its output folder (besides ``overlays/*.png``), with media types.
ARTIFACTS = {
    "findings.json": "application/json",
    "report.md": "text/markdown; charset=utf-8",
    "report.fhir.json": "application/fhir+json",
    "report.sr.dcm": "application/dicom",
    "candidates.json": "application/json",
    "pacs.json": "application/json",
    "viewer.json": "application/json",
    "viewer.bin": "application/octet-stream",
    "viewer-layers.bin": "application/octet-stream",
    "report.seg.dcm": "application/dicom",
}
OVERLAY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,150}\.png$")
WAITING = ("receiving", "queued")

metadata = sa.MetaData()
jobs_table = sa.Table(
    "jobs", metadata,
    sa.Column("job_id", sa.String(32), primary_key=True),
    sa.Column("status", sa.String(12), nullable=False, index=True),
    sa.Column("kind", sa.String(12), nullable=False, default="upload"),   # upload | pacs
    sa.Column("owner", sa.String(16), nullable=False, default=""),       # token id ("" without tokens)
    sa.Column("dedup_key", sa.String(64), unique=True, nullable=True),
    sa.Column("writer", sa.String(40), nullable=False, default="structured"),
    sa.Column("models", sa.String(400), nullable=False, default="auto"),
    sa.Column("params", sa.JSON, nullable=True),                          # pacs: study_uid, push
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("started", sa.Float), sa.Column("finished", sa.Float),
    sa.Column("lease_until", sa.Float), sa.Column("claim", sa.String(40)), sa.Column("worker", sa.String(64)),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("result", sa.String(40)),
    sa.Column("error", sa.Text), sa.Column("error_kind", sa.String(12)),
    sa.Column("input_files", sa.Integer, nullable=False, default=0),
    sa.Column("input_bytes", sa.BigInteger, nullable=False, default=0),
    sa.Column("disk_bytes", sa.BigInteger, nullable=False, default=0),
    sa.Column("zip", sa.Boolean, nullable=False, default=False),
    sa.Column("patient_ref", sa.String(16)),
    sa.Column("elapsed_s", sa.Float),
)


@dataclass(frozen=True)
class Job:
    """One row of the job table. Times are UNIX seconds."""

    job_id: str
    status: str
    kind: str
    owner: str
    writer: str
    models: str
    created: float
    params: dict | None = None
    dedup_key: str | None = None
    started: float | None = None
    finished: float | None = None
    lease_until: float | None = None
    claim: str | None = None
    worker: str | None = None
    attempts: int = 0
    result: str | None = None
    error: str | None = None
    error_kind: str | None = None
    input_files: int = 0
    input_bytes: int = 0
    disk_bytes: int = 0
    zip: bool = False
    patient_ref: str | None = None
    elapsed_s: float | None = None

    @classmethod
    def from_row(cls, row: Any) -> "Job":
        m = row._mapping
        return cls(**{f.name: m[f.name] for f in fields(cls)})


def default_db_url(work_dir: Path) -> str:
    return f"sqlite:///{Path(work_dir).resolve() / 'jobs.db'}"


def make_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _: Any) -> None:
            dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" event below opens the transactions
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")   # WAL + NORMAL: a commit survives a process kill
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # take the write lock at BEGIN: a check-then-write (queue slot, claim) can then never act on a
            # snapshot another process has changed since, and no SQLITE_BUSY_SNAPSHOT is possible
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


class JobStore:
    """The job table plus the job folders under ``work_dir/jobs``; safe to share between processes."""

    def __init__(self, work_dir: Path, db_url: str | None = None, *, keep_uploads: bool = False):
        self.work_dir = Path(work_dir).resolve()
        self.root = self.work_dir / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.keep_uploads = keep_uploads
        self.engine = make_engine(db_url or default_db_url(self.work_dir))
        metadata.create_all(self.engine)
        self._pg = self.engine.dialect.name == "postgresql"

    # ---- paths -------------------------------------------------------------------------------
    def folder(self, job_id: str) -> Path:
        if not JOB_ID.match(job_id):
            raise KeyError(job_id)
        return self.root / job_id

    def input_dir(self, job_id: str) -> Path:
        return self.folder(job_id) / "input"

    def out_dir(self, job: Job) -> Path | None:
        return None if job.result is None else self.folder(job.job_id) / job.result

    def artifact(self, job: Job, rel: str) -> Path | None:
        """The file ``rel`` of a done job's output, or None when absent or not a file we serve.

        Only the names in :data:`ARTIFACTS` and ``overlays/<name>.png`` are served, and the resolved
        path must lie inside the job's output folder (no symlink or ``..`` escapes).
        """
        head, _, tail = rel.partition("/")
        if not (rel in ARTIFACTS or (head == "overlays" and OVERLAY_NAME.match(tail))):
            return None
        base = self.out_dir(job)
        if base is None:
            return None
        out = base.resolve()
        path = (out / rel).resolve()
        if not path.is_relative_to(out) or not path.is_file():
            return None
        return path

    def overlays(self, job: Job) -> list[str]:
        base = self.out_dir(job)
        d = None if base is None else base / "overlays"
        return sorted(p.name for p in d.glob("*.png") if OVERLAY_NAME.match(p.name)) if d and d.is_dir() else []

    # ---- reads -------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        if not JOB_ID.match(job_id):
            return None
        with self.engine.connect() as c:
            row = c.execute(sa.select(jobs_table).where(jobs_table.c.job_id == job_id)).first()
        return None if row is None else Job.from_row(row)

    def all(self) -> list[Job]:
        with self.engine.connect() as c:
            return [Job.from_row(r) for r in c.execute(sa.select(jobs_table).order_by(jobs_table.c.created))]

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in ("receiving", "queued", "running", "done", "failed")}
        with self.engine.connect() as c:
            for status, n in c.execute(sa.select(jobs_table.c.status, sa.func.count()).group_by(jobs_table.c.status)):
                out[status] = n
        return out

    def ahead(self, job: Job) -> int:
        """How many jobs are queued or running before ``job`` (0 once it runs)."""
        if job.status != "queued":
            return 0
        t = jobs_table.c
        q = sa.select(sa.func.count()).where(
            sa.or_(t.status == "running", sa.and_(t.status == "queued", t.created < job.created)))
        with self.engine.connect() as c:
            return int(c.execute(q).scalar_one())

    def held_bytes(self, owner: str) -> int:
        """Disk held by the jobs of one token (uploads while waiting, outputs once done)."""
        with self.engine.connect() as c:
            return int(c.execute(sa.select(sa.func.coalesce(sa.func.sum(jobs_table.c.disk_bytes), 0))
                                 .where(jobs_table.c.owner == owner)).scalar_one())

    # ---- submission ----------------------------------------------------------------------------
    def reserve(self, *, owner: str, max_queued: int, kind: str = "upload", writer: str = "structured",
                models: str = "auto", params: dict | None = None, reserve_bytes: int = 0) -> str | None:
        """Insert a ``receiving`` row only while fewer than ``max_queued`` jobs wait; its id, or None when
        the queue is full. One statement (SQLite serialises writers; PostgreSQL takes a transaction lock)."""
        job_id = uuid.uuid4().hex
        t = jobs_table.c
        waiting = sa.select(sa.func.count()).select_from(jobs_table).where(t.status.in_(WAITING)).scalar_subquery()
        values = sa.select(sa.literal(job_id), sa.literal("receiving"), sa.literal(kind), sa.literal(owner),
                           sa.literal(writer), sa.literal(models), sa.literal(time.time()),
                           sa.literal(reserve_bytes)).where(waiting < max_queued)
        ins = jobs_table.insert().from_select(
            ["job_id", "status", "kind", "owner", "writer", "models", "created", "disk_bytes"], values)
        with self.engine.begin() as c:
            if self._pg:
                c.execute(sa.text("SELECT pg_advisory_xact_lock(1808)"))
            c.execute(ins)  # (rowcount of INSERT ... SELECT is not reported alike by every driver: look)
            if c.execute(sa.select(t.job_id).where(t.job_id == job_id)).first() is None:
                return None
            if params is not None:
                c.execute(jobs_table.update().where(t.job_id == job_id).values(params=params))
        self.input_dir(job_id).mkdir(parents=True)
        return job_id

    def discard(self, job_id: str) -> None:
        """Remove a reserved job whose upload was refused (row and folder)."""
        with self.engine.begin() as c:
            c.execute(jobs_table.delete().where(jobs_table.c.job_id == job_id, jobs_table.c.status == "receiving"))
        remove_tree(self.folder(job_id))

    def submit(self, job_id: str, *, dedup_key: str | None, writer: str, models: str, n_files: int, n_bytes: int,
               was_zip: bool = False) -> tuple[Job, bool]:
        """Queue a received job. Returns (job, False), or (the existing job, True) when the same content
        with the same options was already submitted by the same owner (the new upload is discarded)."""
        t = jobs_table.c
        try:
            with self.engine.begin() as c:
                c.execute(jobs_table.update().where(t.job_id == job_id, t.status == "receiving").values(
                    status="queued", dedup_key=dedup_key, writer=writer, models=models, input_files=n_files,
                    input_bytes=n_bytes, disk_bytes=n_bytes, zip=was_zip, created=time.time()))
        except IntegrityError:
            with self.engine.connect() as c:
                row = c.execute(sa.select(jobs_table).where(t.dedup_key == dedup_key)).first()
            self.discard(job_id)
            if row is not None:
                return Job.from_row(row), True
            raise
        job = self.get(job_id)
        assert job is not None
        return job, False

    # ---- workers -------------------------------------------------------------------------------
    def claim(self, worker: str, lease_s: float) -> Job | None:
        """Atomically move the oldest queued job to ``running`` for ``worker``; None when none waits."""
        t = jobs_table.c
        for _ in range(5):
            with self.engine.connect() as c:
                row = c.execute(sa.select(t.job_id).where(t.status == "queued").order_by(t.created).limit(1)).first()
            if row is None:
                return None
            claim = secrets.token_hex(8)
            now = time.time()
            with self.engine.begin() as c:
                n = c.execute(jobs_table.update().where(t.job_id == row.job_id, t.status == "queued").values(
                    status="running", claim=claim, worker=worker, started=now, lease_until=now + lease_s,
                    attempts=t.attempts + 1)).rowcount
            if n == 1:
                return self.get(row.job_id)
        return None

    def heartbeat(self, job_id: str, claim: str, lease_s: float) -> bool:
        """Renew the lease; False when the claim was lost (the job was given back and claimed again)."""
        t = jobs_table.c
        with self.engine.begin() as c:
            return c.execute(jobs_table.update().where(t.job_id == job_id, t.claim == claim, t.status == "running")
                             .values(lease_until=time.time() + lease_s)).rowcount == 1

    def set_patient_ref(self, job_id: str, claim: str, ref: str | None) -> None:
        t = jobs_table.c
        with self.engine.begin() as c:
            c.execute(jobs_table.update().where(t.job_id == job_id, t.claim == claim).values(patient_ref=ref))

    def finish(self, job_id: str, claim: str, *, status: str, result: str | None = None, error: str | None = None,
               error_kind: str | None = None, disk_bytes: int | None = None, elapsed_s: float | None = None) -> bool:
        """Record the end of a claimed job; False (nothing changed) when ``claim`` no longer holds it."""
        t = jobs_table.c
        values: dict[str, Any] = {"status": status, "result": result, "error": error, "error_kind": error_kind,
                                  "finished": time.time(), "lease_until": None, "elapsed_s": elapsed_s}
        if status == "failed":
            values["dedup_key"] = None  # a failed study may be sent again
        if disk_bytes is not None:
            values["disk_bytes"] = disk_bytes
        with self.engine.begin() as c:
            return c.execute(jobs_table.update().where(t.job_id == job_id, t.claim == claim, t.status == "running")
                             .values(**values)).rowcount == 1

    def give_back(self, *, worker: str | None = None, expired_before: float | None = None,
                  max_attempts: int = 3, charge: bool = True) -> int:
        """Queue again the running jobs of a dead ``worker`` or whose lease ran out; a job that has already
        been tried ``max_attempts`` times fails instead (it kills its worker). ``charge=False`` (an orderly
        stop) does not count the attempt. Returns the jobs touched."""
        t = jobs_table.c
        cond = [t.status == "running"]
        cond.append(t.worker == worker if worker is not None else t.lease_until < (expired_before or time.time()))
        with self.engine.begin() as c:
            if not charge:
                return c.execute(jobs_table.update().where(*cond).values(
                    status="queued", claim=None, worker=None, lease_until=None, started=None,
                    attempts=t.attempts - 1)).rowcount
            failed = c.execute(jobs_table.update().where(*cond, t.attempts >= max_attempts).values(
                status="failed", error_kind="internal", finished=time.time(), dedup_key=None, lease_until=None,
                error=f"the analysis stopped its worker {max_attempts} times; the server log has the details")
            ).rowcount
            requeued = c.execute(jobs_table.update().where(*cond).values(
                status="queued", claim=None, worker=None, lease_until=None, started=None)).rowcount
        return failed + requeued

    # ---- deletion, recovery, retention ---------------------------------------------------------
    def delete(self, job_id: str) -> str:
        """Delete a job and its folder. Returns its last status; raises KeyError (unknown) or
        RuntimeError (running or receiving: it cannot be interrupted)."""
        job = self.get(job_id)
        if job is None:
            raise KeyError(job_id)
        t = jobs_table.c
        with self.engine.begin() as c:
            n = c.execute(jobs_table.delete().where(t.job_id == job_id, t.status.in_(("queued", "done", "failed"))))
        if n.rowcount != 1:
            raise RuntimeError(f"the job is {job.status}; delete it once it is done or failed")
        remove_tree(self.folder(job_id))
        return job.status

    def recover(self, started_before: float) -> dict[str, int]:
        """At server start: drop uploads a crash left half-received (rows still ``receiving`` from before
        ``started_before``) and job folders without a row; give back jobs whose lease ran out."""
        t = jobs_table.c
        with self.engine.begin() as c:
            stale = [r.job_id for r in c.execute(sa.select(t.job_id).where(t.status == "receiving",
                                                                           t.created < started_before))]
            if stale:
                c.execute(jobs_table.delete().where(t.job_id.in_(stale)))
            known = {r.job_id for r in c.execute(sa.select(t.job_id))}
        orphans = 0
        for d in self.root.iterdir():
            if d.name not in known and (JOB_ID.match(d.name) or d.name.startswith(".")):
                remove_tree(d) if d.is_dir() else d.unlink(missing_ok=True)
                orphans += 1
        for jid in stale:
            remove_tree(self.root / jid)
        return {"half_received": len(stale), "orphan_folders": orphans, "given_back": self.give_back()}

    def expire(self, keep_days: float) -> int:
        """Delete done and failed jobs finished more than ``keep_days`` ago; returns how many."""
        t = jobs_table.c
        cutoff = time.time() - keep_days * 86400
        with self.engine.connect() as c:
            old = [r.job_id for r in c.execute(sa.select(t.job_id).where(t.status.in_(("done", "failed")),
                                                                         t.finished < cutoff))]
        n = 0
        for jid in old:
            try:
                self.delete(jid)
                n += 1
            except (KeyError, RuntimeError):
                continue
        return n


def folder_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                continue
    return total
