"""Write outputs so that a failure never leaves a half-written file or folder behind.

A folder is built in a hidden temporary sibling and renamed into place only when complete; an
existing folder is never touched unless ``overwrite`` is set (and then replaced only at the end).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from radscribe.errors import OutputExistsError, RadscribeInputError


def check_output_dir(out: Path, overwrite: bool) -> None:
    """Fail early (before any work) when ``out`` exists and may not be replaced."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"output folder {out} exists already; pass --overwrite to replace it")
    if out.exists() and not out.is_dir():
        raise RadscribeInputError(f"output path {out} exists and is not a folder")


@contextlib.contextmanager
def atomic_dir(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder; on success it becomes ``out``. On any error it is removed."""
    out = Path(out)
    check_output_dir(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "w", overwrite: bool = True, **open_kw) -> Iterator:
    """Open a temporary sibling of ``path`` for writing; it replaces ``path`` only on success."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"output file {path} exists already; pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    try:
        with open(tmp, mode, **open_kw) as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
