"""Workers: each holds one loaded analysis session and runs the jobs it claims from the job table.

``radscribe serve --workers N`` starts N worker processes (``python -m radscribe.serve.worker``) and
supervises them (:class:`Supervisor`): a worker that dies has its job given back at once and is started
again. A worker renews the lease of its job while it runs; a job whose lease runs out (its worker hung,
or the whole machine stopped) is given back by the next sweep. A worker whose server died finishes the
job it holds and exits. The analysis writes into ``out-<claim>/`` atomically and only the claim that
still holds the job may mark it done, so no job completes twice.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from radscribe.errors import RadscribeInputError
from radscribe.serve.jobs import Job, JobStore, folder_bytes
from radscribe.serve.upload import remove_tree, study_path

log = logging.getLogger("radscribe.serve")
SALT_FILE = "salt"


class Session(Protocol):
    def analyze(self, path: Path, out: Path, *, overwrite: bool = False, writer: str | None = None,
                models: str | None = None) -> Any: ...


class _FunctionSession:
    """Stand-in for ``radscribe.analyze.Analyzer`` where it does not exist yet: one-off ``analyze`` calls."""

    def analyze(self, path: Path, out: Path, *, overwrite: bool = False, writer: str | None = None,
                models: str | None = None) -> Any:
        from radscribe.analyze import analyze

        return analyze(path, out, overwrite=overwrite, writer=writer or "structured", models=models or "auto")


def make_session() -> Session:
    """One analysis session for the life of a worker: ``Analyzer`` loads each model once, lazily.

    ``RADSCRIBE_SESSION_FACTORY=module:callable`` replaces it (the fault tests use a slow stand-in)."""
    factory = os.environ.get("RADSCRIBE_SESSION_FACTORY")
    if factory:
        import importlib

        module, _, name = factory.partition(":")
        return getattr(importlib.import_module(module), name)()
    try:
        from radscribe.analyze import Analyzer  # type: ignore[attr-defined]
    except ImportError:
        return _FunctionSession()
    return Analyzer()


def work_salt(work_dir: Path) -> bytes:
    """The work folder's secret salt for patient references (created once, mode 0600)."""
    path = Path(work_dir) / SALT_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_hex(32).encode())
    return path.read_bytes().strip()


def patient_ref(folder: Path, salt: bytes) -> str | None:
    """A salted hash of the first DICOM file's PatientID (or name) under ``folder``; None when there is none."""
    import pydicom

    for p in sorted(folder.rglob("*"))[:200]:
        if not p.is_file():
            continue
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True, specific_tags=["PatientID", "PatientName"])
        except Exception:  # not DICOM: keep looking
            continue
        ident = str(ds.get("PatientID", "") or ds.get("PatientName", "") or "")
        return hmac.new(salt, ident.encode(), hashlib.sha256).hexdigest()[:16] if ident else None
    return None


def clean_message(msg: str, job_folder: Path) -> str:
    """One line, without the server's folders (the upload is called 'the upload')."""
    inp = job_folder / "input"
    msg = msg.replace(f"{inp}/", "").replace(str(inp), "the upload").replace(str(job_folder), "the job")
    msg = msg.replace(str(job_folder.parent.parent), "the work folder")
    return " ".join(msg.split())


class Worker:
    """Claims and runs jobs until stopped. ``session`` defaults to :func:`make_session` (loaded once)."""

    def __init__(self, store: JobStore, *, worker_id: str | None = None, session: Session | None = None,
                 lease_s: float = 30.0, poll_s: float = 0.05, pipeline: Any = None):
        self.store = store
        self.worker_id = worker_id or f"{os.getpid()}-{secrets.token_hex(3)}"
        self.session = session if session is not None else make_session()
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.salt = work_salt(store.work_dir)
        self.stop = threading.Event()
        self.current: Job | None = None
        self.pipeline = pipeline  # PACS jobs: radscribe.serve.pacs.run_pacs_job-like callable (tests inject)

    @staticmethod
    def warm() -> None:
        """Import what every job needs before claiming one (a first job should not pay for imports)."""
        import pydicom  # noqa: F401

        import radscribe.io.loader  # noqa: F401
        import radscribe.serve.viewer  # noqa: F401

    def run(self, parent_pid: int | None = None) -> None:
        """The loop: claim, analyse, finish; exits when stopped or when ``parent_pid`` is gone."""
        self.warm()
        while not self.stop.is_set():
            if parent_pid is not None and os.getppid() != parent_pid:
                log.warning("worker %s: the server is gone; exiting", self.worker_id)
                return
            job = self.store.claim(self.worker_id, self.lease_s)
            if job is None:
                self.stop.wait(self.poll_s)
                continue
            self.run_job(job)

    def run_job(self, job: Job) -> bool:
        """Run one claimed job; True when this worker recorded its end."""
        assert job.claim is not None
        self.current = job
        folder = self.store.folder(job.job_id)
        lost = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job, lost), daemon=True)
        beat.start()
        out_name = f"out-{job.claim}"
        out = folder / out_name
        adopted = self._adopt(folder, out, job.kind)
        inp = self.store.input_dir(job.job_id)
        t0 = time.perf_counter()
        status, error, kind = "done", None, None
        try:
            if adopted:
                log.info("job %s: the analysis of an earlier claim had finished; its result is used", job.job_id)
                if not (out / "viewer.json").is_file() and inp.is_dir():
                    self._viewer(study_path(inp), out)
            elif job.kind == "pacs":
                from radscribe.serve.pacs import run_pacs_job

                (self.pipeline or run_pacs_job)(job, inp, out, self.session, self.salt, self._ref_setter(job))
            else:
                self.store.set_patient_ref(job.job_id, job.claim, patient_ref(inp, self.salt))
                self.session.analyze(study_path(inp), out, overwrite=True, writer=job.writer, models=job.models)
                self._viewer(study_path(inp), out)
        except RadscribeInputError as exc:
            status, error, kind = "failed", clean_message(str(exc), folder), "input"
        except Exception as exc:  # a bug: keep the worker alive, log the traceback, tell the user one line
            log.exception("job %s failed", job.job_id)
            status, kind = "failed", "internal"
            error = "internal error in radscribe (" + clean_message(f"{type(exc).__name__}: {exc}", folder) + \
                    "); the server log has the traceback"
        elapsed = time.perf_counter() - t0
        lost.set()
        beat.join(1.0)
        if status == "failed":
            remove_tree(out)
        size = folder_bytes(out) + (folder_bytes(inp) if self.store.keep_uploads else 0)
        ok = self.store.finish(job.job_id, job.claim, status=status, result=out_name if status == "done" else None,
                               error=error, error_kind=kind, disk_bytes=size, elapsed_s=round(elapsed, 4))
        if not ok:  # given back meanwhile (lease lost): another claim owns the job and its input now
            remove_tree(out)
            log.warning("job %s: claim lost while running; result discarded", job.job_id)
        else:
            if not self.store.keep_uploads:
                remove_tree(inp)
            log.info("job %s %s in %.2f s by worker %s", job.job_id, status, elapsed, self.worker_id)
        self.current = None
        return ok

    @staticmethod
    def _adopt(folder: Path, out: Path, kind: str) -> bool:
        """Take over the complete output of an earlier claim (its worker died after the analysis finished,
        before recording it), so that no study is analysed twice to completion; remove any partial one.
        An output folder is complete when it exists: the analysis builds it aside and renames it in place.
        A PACS job's output counts only once its results were stored (``pacs.json``)."""
        done = None
        for prior in sorted(folder.glob("out-*")):
            marker = "pacs.json" if kind == "pacs" else "findings.json"
            if done is None and (prior / marker).is_file():
                done = prior
            else:
                remove_tree(prior)
        for partial in folder.glob(".out-*"):
            remove_tree(partial)
        if done is None:
            return False
        done.rename(out)
        return True

    @staticmethod
    def _viewer(study: Path, out: Path) -> None:
        """The browser viewer's files; a study the analysis read but the viewer cannot is only logged."""
        if not (out / "findings.json").is_file():
            return
        from radscribe.serve.viewer import write_viewer_files

        try:
            write_viewer_files(study, out)
        except Exception as exc:  # noqa: BLE001 - the analysis result stands without the viewer files
            log.warning("viewer files not written: %s", type(exc).__name__)

    def _ref_setter(self, job: Job) -> Any:
        return lambda ref: self.store.set_patient_ref(job.job_id, job.claim or "", ref)

    def _heartbeat(self, job: Job, done: threading.Event) -> None:
        while not done.wait(self.lease_s / 3):
            if not self.store.heartbeat(job.job_id, job.claim or "", self.lease_s):
                return


def worker_command(work_dir: Path, db_url: str, worker_id: str, *, lease_s: float, keep_uploads: bool) -> list[str]:
    cmd = [sys.executable, "-m", "radscribe.serve.worker", "--work-dir", str(work_dir), "--db", db_url,
           "--worker-id", worker_id, "--lease-s", str(lease_s)]
    return cmd + (["--keep-uploads"] if keep_uploads else [])


class Supervisor:
    """Keeps ``n`` worker processes alive, gives back the jobs of dead ones, sweeps leases and retention."""

    def __init__(self, store: JobStore, db_url: str, n: int, *, lease_s: float = 30.0, keep_days: float | None = None,
                 log_path: Path | None = None):
        self.store, self.db_url, self.n = store, db_url, n
        self.lease_s, self.keep_days = lease_s, keep_days
        self.log_path = log_path
        self.procs: dict[str, subprocess.Popen] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._serial = 0

    def start(self) -> None:
        for _ in range(self.n):
            self._spawn()
        self._thread = threading.Thread(target=self._watch, name="radscribe-supervisor", daemon=True)
        self._thread.start()

    def _spawn(self) -> None:
        self._serial += 1
        wid = f"w{self._serial}-{os.getpid()}-{secrets.token_hex(2)}"
        err = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115 - the child keeps it
        self.procs[wid] = subprocess.Popen(
            worker_command(self.store.work_dir, self.db_url, wid, lease_s=self.lease_s,
                           keep_uploads=self.store.keep_uploads),
            stdin=subprocess.DEVNULL, stdout=err or subprocess.DEVNULL, stderr=err or None)
        if err:
            err.close()

    def _watch(self) -> None:
        last_sweep = 0.0
        while not self._stop.wait(0.5):
            for wid, p in list(self.procs.items()):
                if p.poll() is not None:
                    n = self.store.give_back(worker=wid)
                    log.warning("worker %s exited with %s; %d job(s) given back; starting another", wid,
                                p.returncode, n)
                    del self.procs[wid]
                    if not self._stop.is_set():
                        self._spawn()
            if time.monotonic() - last_sweep > min(10.0, self.lease_s / 2):
                last_sweep = time.monotonic()
                self.store.give_back()
                if self.keep_days is not None:
                    self.store.expire(self.keep_days)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        end = time.monotonic() + timeout
        for wid, p in self.procs.items():
            try:
                p.wait(max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            self.store.give_back(worker=wid, charge=False)
        if self._thread is not None:
            self._thread.join(2.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m radscribe.serve.worker", description="one radscribe worker")
    ap.add_argument("--work-dir", type=Path, required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--worker-id")
    ap.add_argument("--lease-s", type=float, default=30.0)
    ap.add_argument("--keep-uploads", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parent = os.getppid()
    store = JobStore(args.work_dir, args.db, keep_uploads=args.keep_uploads)
    worker = Worker(store, worker_id=args.worker_id, lease_s=args.lease_s)

    def _term(*_: Any) -> None:  # stop now: give the running job back rather than finish it
        store.give_back(worker=worker.worker_id, charge=False)
        os._exit(0)

    signal.signal(signal.SIGTERM, _term)
    worker.run(parent_pid=parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
