"""A stand-in analysis session for tests with real server and worker processes.

Each call sleeps ``FAKE_SESSION_SLEEP`` seconds (so a test can kill a process mid-analysis), writes a
small output folder atomically, and appends one line ``<sha256 of the input>`` to
``$FAKE_SESSION_LOG`` when (and only when) it completes: a line seen twice is a study analysed twice.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from radscribe.io.output import atomic_dir


class SlowSession:
    def analyze(self, path, out, *, overwrite=False, writer=None, models=None):
        path = Path(path)
        files = sorted(p for p in (path.rglob("*") if path.is_dir() else [path]) if p.is_file())
        digest = hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()
        time.sleep(float(os.environ.get("FAKE_SESSION_SLEEP", "0.5")))
        with atomic_dir(Path(out), overwrite=overwrite) as tmp:
            (tmp / "report.md").write_text(f"# fake\n\n{digest}\n")
            (tmp / "findings.json").write_text("{}")
        with open(os.environ["FAKE_SESSION_LOG"], "a") as fh:
            fh.write(digest + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def factory() -> SlowSession:
    return SlowSession()
