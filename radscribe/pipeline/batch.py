"""``radscribe analyze PATH [PATH ...] --out DIR``: one session, many studies.

With one PATH, ``--out`` is that study's folder. With several, ``--out`` is a parent folder and each
study goes to ``DIR/<study name>/`` (the file name without its image suffix, or the folder name;
``-2``, ``-3`` ... make repeated names unique). One :class:`radscribe.analyze.Analyzer` serves them
all, so models load once. A study that fails is reported with its own ``error:`` line and the others
go on; the exit code is 2 only when none succeeded. A progress bar goes to stderr, a summary table to
stdout.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any

from radscribe.errors import RadscribeInputError
from radscribe.pipeline.outputs import check_output_location, one_line

_SUFFIXES = (".nii.gz", ".nii", ".dcm", ".dicom", ".png", ".jpg", ".jpeg", ".mha", ".mhd", ".nrrd", ".nhdr",
             ".tif", ".tiff", ".bmp", ".gz")


def study_name(path: Path) -> str:
    """Folder name for a study: the file name without its image suffix (``a.nii.gz`` -> ``a``), or
    the folder's name; characters other than letters, digits, ``._-`` become ``_``."""
    name = Path(path).name or Path(path).absolute().name or "study"
    low = name.lower()
    for suf in _SUFFIXES:
        if low.endswith(suf) and len(name) > len(suf):
            name = name[: -len(suf)]
            break
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "study"
    return name[:100]


def unique_names(paths: list[Path]) -> list[str]:
    """:func:`study_name` of each path, with ``-2``, ``-3``, ... on repeats (case-insensitively)."""
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        base = study_name(p)
        name, k = base, 1
        while name.lower() in seen:
            k += 1
            name = f"{base}-{k}"
        seen[name.lower()] = 1
        out.append(name)
    return out


def _summary(analysis: Any) -> str:
    n = sum(f.present for f in analysis.findings)
    return (f"{analysis.study.modality} {analysis.study.body_region}: {n} finding(s) by "
            f"{', '.join(analysis.detectors_run) or 'no applicable detector'}")


def run_cli(args: Any, Analyzer: Any) -> int:
    """Run ``radscribe analyze``; ``Analyzer`` is :class:`radscribe.analyze.Analyzer` (passed in: this
    module sits below the pipeline that uses it)."""
    paths = [Path(p) for p in (args.path if isinstance(args.path, (list, tuple)) else [args.path])]
    out = Path(args.out)
    analyzer = Analyzer(writer=args.writer, models=args.models)  # unknown names fail here, before any work
    if len(paths) == 1:
        analysis = analyzer.analyze(paths[0], out, overwrite=args.overwrite, series_uid=args.series)
        print(f"{_summary(analysis)} in {analysis.timings.get('total', 0):.2f} s", file=sys.stderr)
        print(f"wrote {out}/findings.json, {out}/report.md and {out}/overlays/")
        return 0
    if args.series:
        raise RadscribeInputError("--series selects one series of one study; give a single PATH with it")
    return _run_many(analyzer, paths, out, args.overwrite)


def _run_many(analyzer: Any, paths: list[Path], out: Path, overwrite: bool) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    check_output_location(out, overwrite=True)  # the parent may exist; it must be (or become) a folder
    names = unique_names(paths)
    for name in names:
        check_output_location(out / name, overwrite=True)   # names too long etc.: before any work
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    rows: list[tuple[str, str, str, str, str]] = []
    ok = 0
    with Progress(TextColumn("analyze"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=err, transient=True,
                  disable=not err.is_terminal) as bar:
        task = bar.add_task("", total=len(paths))
        for path, name in zip(paths, names):
            bar.update(task, description=str(path))
            t = time.perf_counter()
            try:
                a = analyzer.analyze(path, out / name, overwrite=overwrite)
            except RadscribeInputError as exc:
                err.print(f"error: {path}: {exc}", markup=False)
                rows.append((str(path), "failed", "", str(exc).splitlines()[0][:80], f"{time.perf_counter() - t:.1f}"))
            except Exception as exc:  # noqa: BLE001 - one broken study must not stop the others
                err.print(f"error: {path}: internal error ({one_line(exc)})", markup=False)
                rows.append((str(path), "failed", "", one_line(exc)[:80], f"{time.perf_counter() - t:.1f}"))
            else:
                ok += 1
                rows.append((str(path), f"{name}/", f"{a.study.modality} {a.study.body_region}",
                             f"{sum(f.present for f in a.findings)} by {', '.join(a.detectors_run) or 'none'}",
                             f"{time.perf_counter() - t:.1f}"))
            bar.advance(task)
    table = Table(title=f"radscribe analyze: {ok} of {len(paths)} studies written under {out}/")
    for col in ("study", "folder", "recognized as", "findings", "s"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(*r)
    Console(width=max(120, err.width)).print(table)
    if ok == 0:
        raise RadscribeInputError(f"none of the {len(paths)} studies could be analysed (see the errors above)")
    return 0
