"""A small job store on disk with one background worker.

Each job is a folder ``<work_dir>/jobs/<id>/`` holding ``job.json`` (its state), ``input/`` (the upload,
deleted after analysis unless ``keep_uploads``) and ``out/`` (what :func:`radscribe.analyze.analyze`
wrote). One worker thread analyses one job at a time (the target machine has 2 cores), so an upload
returns at once with a job id; the state moves queued -> running -> done | failed. A failed job keeps
radscribe's one-line error message. Jobs left queued or running by a stopped server are queued again
when the store is opened.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from radscribe.errors import RadscribeInputError
from radscribe.io.output import atomic_file
from radscribe.serve.upload import remove_tree, study_path

log = logging.getLogger("radscribe.serve")

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
#: Files a done job may serve from its ``out/`` folder (besides ``overlays/*.png``), with media types.
ARTIFACTS = {
    "findings.json": "application/json",
    "report.md": "text/markdown; charset=utf-8",
    "report.fhir.json": "application/fhir+json",
    "report.sr.dcm": "application/dicom",
    "candidates.json": "application/json",
}
OVERLAY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,150}\.png$")


@dataclass
class Job:
    """The state of one job, as stored in ``job.json``. Times are UNIX seconds."""

    job_id: str
    status: str = "queued"              # queued | running | done | failed
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    #: "input" (radscribe refused the study: the message says why) or "internal" (a radscribe bug).
    error_kind: str | None = None
    writer: str = "structured"
    models: str = "auto"
    input_files: int = 0
    input_bytes: int = 0
    input_names: list[str] = field(default_factory=list)   # first 20 saved names
    unpacked_zip: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Job":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


AnalyzeFn = Callable[..., Any]


def _default_analyze(path: Path, out: Path, **kw: Any) -> Any:
    from radscribe.analyze import analyze

    return analyze(path, out, **kw)


class JobStore:
    """Jobs on disk under ``work_dir/jobs`` and the single worker that runs them."""

    def __init__(self, work_dir: Path, *, keep_uploads: bool = False, analyze_fn: AnalyzeFn | None = None):
        self.root = Path(work_dir).resolve() / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.keep_uploads = keep_uploads
        self._analyze = analyze_fn or _default_analyze
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._recover()

    # ---- paths -------------------------------------------------------------------------------
    def folder(self, job_id: str) -> Path:
        if not JOB_ID.match(job_id):
            raise KeyError(job_id)
        return self.root / job_id

    def input_dir(self, job_id: str) -> Path:
        return self.folder(job_id) / "input"

    def out_dir(self, job_id: str) -> Path:
        return self.folder(job_id) / "out"

    def artifact(self, job_id: str, rel: str) -> Path | None:
        """The file ``rel`` of a job's output, or None when absent or not a file we serve.

        Only the names in :data:`ARTIFACTS` and ``overlays/<name>.png`` are served, and the resolved
        path must lie inside the job's ``out/`` folder (no symlink or ``..`` escapes).
        """
        head, _, tail = rel.partition("/")
        if not (rel in ARTIFACTS or (head == "overlays" and OVERLAY_NAME.match(tail))):
            return None
        try:
            out = self.out_dir(job_id).resolve()
        except KeyError:
            return None
        path = (out / rel).resolve()
        if not path.is_relative_to(out) or not path.is_file():
            return None
        return path

    def overlays(self, job_id: str) -> list[str]:
        d = self.out_dir(job_id) / "overlays"
        return sorted(p.name for p in d.glob("*.png") if OVERLAY_NAME.match(p.name)) if d.is_dir() else []

    # ---- state -------------------------------------------------------------------------------
    def _save(self, job: Job) -> None:
        with atomic_file(self.folder(job.job_id) / "job.json") as fh:
            json.dump(job.to_dict(), fh, indent=1)

    def _recover(self) -> None:
        """Load the jobs on disk; queue again the ones a stopped server left queued or running."""
        pending = []
        for d in sorted(self.root.iterdir()):
            if not (JOB_ID.match(d.name) and (d / "job.json").is_file()):
                continue
            try:
                job = Job.from_dict(json.loads((d / "job.json").read_text()))
            except (ValueError, TypeError) as exc:
                log.warning("skipping job folder %s: unreadable job.json (%s)", d, exc)
                continue
            if job.status in ("queued", "running"):
                if (d / "input").is_dir():
                    job.status, job.started = "queued", None
                    pending.append(job)
                else:
                    job.status, job.error, job.error_kind = "failed", "the server stopped before the analysis " \
                        "finished and the upload is gone; upload the study again", "internal"
                    job.finished = time.time()
                self._save(job)
            self._jobs[job.job_id] = job
        for job in sorted(pending, key=lambda j: j.created):
            self._enqueue(job.job_id)

    def reserve(self) -> str:
        """A new job id with an empty ``input/`` folder to receive the upload (not listed until submitted)."""
        job_id = uuid.uuid4().hex
        self.input_dir(job_id).mkdir(parents=True)
        return job_id

    def discard(self, job_id: str) -> None:
        """Remove a reserved job whose upload was refused."""
        remove_tree(self.folder(job_id))

    def submit(self, job_id: str, *, writer: str, models: str, files: list[Path], n_bytes: int,
               unpacked_zip: str | None = None) -> Job:
        inp = self.input_dir(job_id)
        job = Job(job_id=job_id, writer=writer, models=models, input_files=len(files), input_bytes=n_bytes,
                  input_names=sorted(str(p.relative_to(inp)) for p in files)[:20], unpacked_zip=unpacked_zip)
        self._save(job)
        with self._lock:
            self._jobs[job_id] = job
        self._enqueue(job_id)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else Job.from_dict(job.to_dict())

    def delete(self, job_id: str) -> str:
        """Delete a job and its folder. Returns its last status; raises KeyError (unknown) or
        RuntimeError (running: it cannot be interrupted)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise KeyError(job_id)
            if job.status == "running":
                raise RuntimeError("the job is running; delete it once it is done or failed")
            del self._jobs[job_id]
        remove_tree(self.folder(job_id))
        return job.status

    def ahead(self, job_id: str) -> int:
        """How many jobs are queued or running before ``job_id`` (0 once it runs)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.status != "queued":
                return 0
            return sum(1 for j in self._jobs.values() if j.status == "running"
                       or (j.status == "queued" and j.created < job.created))

    def counts(self) -> dict[str, int]:
        with self._lock:
            out = {s: 0 for s in ("queued", "running", "done", "failed")}
            for j in self._jobs.values():
                out[j.status] += 1
            return out

    # ---- worker ------------------------------------------------------------------------------
    def _enqueue(self, job_id: str) -> None:
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="radscribe-worker", daemon=True)
                self._worker.start()
        self._queue.put(job_id)

    def close(self, timeout: float | None = None) -> None:
        """Stop the worker after the job it is running (queued jobs stay queued on disk)."""
        self._queue.put(None)
        if self._worker is not None:
            self._worker.join(timeout)

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until no job is queued or running (for tests and scripts); False on timeout."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            c = self.counts()
            if c["queued"] == 0 and c["running"] == 0:
                return True
            time.sleep(0.05)
        return False

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            with self._lock:
                job = self._jobs.get(job_id)
                if job is None or job.status != "queued":  # deleted while queued
                    continue
                job.status, job.started = "running", time.time()
            self._save(job)
            self._run(job)

    def _run(self, job: Job) -> None:
        inp, out = self.input_dir(job.job_id), self.out_dir(job.job_id)
        for stale in self.folder(job.job_id).glob(".out.*"):  # left by a server stopped mid-analysis
            remove_tree(stale)
        status, error, kind = "done", None, None
        try:
            self._analyze(study_path(inp), out, overwrite=True, writer=job.writer, models=job.models)
        except RadscribeInputError as exc:
            status, error, kind = "failed", self._clean_message(str(exc), inp), "input"
        except Exception as exc:  # a bug: keep the server alive, log the traceback, tell the user one line
            log.exception("job %s failed", job.job_id)
            status, kind = "failed", "internal"
            error = "internal error in radscribe (" + self._clean_message(f"{type(exc).__name__}: {exc}", inp) + \
                    "); the server log has the traceback"
        if not self.keep_uploads:
            remove_tree(inp)
        with self._lock:
            if job.job_id not in self._jobs:
                return
            job.status, job.error, job.error_kind, job.finished = status, error, kind, time.time()
        self._save(job)

    @staticmethod
    def _clean_message(msg: str, inp: Path) -> str:
        """One line, with the server's job folder replaced by what the user uploaded."""
        msg = msg.replace(f"{inp}/", "").replace(str(inp), "the upload").replace(str(inp.parent), "the job")
        return " ".join(msg.split())
