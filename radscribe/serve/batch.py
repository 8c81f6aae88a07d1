"""``radscribe batch INDEX.csv|FOLDER --out DIR --engine local|ray``: analyse many studies, resumably.

A study is a row of the index (column ``path``, relative to the CSV's folder; optional ``id`` and
``series_uid``) or an entry of the folder (each file or sub-folder not starting with a dot). Study ``id``
is written to ``DIR/<id>/`` by the same analysis as ``radscribe analyze`` (atomically), so a re-run skips
every study whose ``findings.json`` exists; a failed study is recorded with its ``error:`` line in
``DIR/batch.jsonl`` and does not stop the batch (it is tried again on the next run).

``--engine local`` runs one analysis session in this process. ``--engine ray`` streams the studies
through Ray Data with one session per worker actor (``--workers`` actors); ``--address`` joins a running
cluster (``ray start --head`` on one machine, ``ray start --address HEAD:6379`` on the others), otherwise a
local one is started on loopback. Progress is a tqdm bar; the end prints a summary table.
"""

from __future__ import annotations

import csv
import json
import re
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radscribe.errors import RadscribeInputError

LEDGER = "batch.jsonl"
_ID = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Study:
    id: str
    path: str
    series_uid: str | None = None


def _safe_id(s: str) -> str:
    s = _ID.sub("_", s).strip("._")
    return s[:120] or "study"


def list_studies(source: Path) -> list[Study]:
    """The studies of an index CSV or a folder, with unique ids."""
    source = Path(source)
    if source.is_dir():
        entries = sorted(p for p in source.iterdir() if not p.name.startswith("."))
        studies = [Study(_safe_id(p.name.split(".")[0] if p.is_file() else p.name), str(p.resolve())) for p in entries]
    elif source.is_file() and source.suffix.lower() == ".csv":
        with open(source, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or "path" not in reader.fieldnames:
                raise RadscribeInputError(f"{source} has no 'path' column; give one study path per row "
                                          "(optional columns: id, series_uid)")
            studies = []
            for k, row in enumerate(reader, 1):
                p = Path(row["path"].strip())
                p = p if p.is_absolute() else (source.parent / p)
                sid = _safe_id(row.get("id") or p.name.split(".")[0] or f"row{k}")
                studies.append(Study(sid, str(p.resolve()), (row.get("series_uid") or "").strip() or None))
    else:
        raise RadscribeInputError(f"{source} is neither a folder of studies nor an index .csv")
    seen: dict[str, int] = {}
    unique = []
    for s in studies:  # two studies named alike get -2, -3 ...
        n = seen[s.id] = seen.get(s.id, 0) + 1
        unique.append(s if n == 1 else Study(f"{s.id}-{n}", s.path, s.series_uid))
    if not unique:
        raise RadscribeInputError(f"{source} holds no study")
    return unique


def run_one(session: Any, study: dict, out_root: str, writer: str, models: str) -> dict:
    """Analyse one study into ``out_root/<id>``; a result row (never raises)."""
    t = time.perf_counter()
    status, error = "done", None
    try:
        kw = {"series_uid": study["series_uid"]} if study.get("series_uid") else {}
        session.analyze(Path(study["path"]), Path(out_root) / study["id"], overwrite=True, writer=writer,
                        models=models, **kw)
    except RadscribeInputError as exc:
        status, error = "failed", "error: " + " ".join(str(exc).split())
    except Exception as exc:  # noqa: BLE001 - a bug in one study must not stop the batch
        status = "failed"
        error = f"error: internal error ({type(exc).__name__}: {' '.join(str(exc).split())[:300]})"
        traceback.print_exc(file=sys.stderr)
    return {"id": study["id"], "status": status, "error": error, "seconds": round(time.perf_counter() - t, 4)}


class AnalyzeActor:
    """A Ray Data stage: one analysis session per actor, loaded once, reused for every study."""

    def __init__(self, out_root: str, writer: str, models: str):
        from radscribe.serve.worker import make_session

        self.session = make_session()
        self.out_root, self.writer, self.models = out_root, writer, models

    def __call__(self, batch: dict) -> dict:
        rows = [run_one(self.session, {"id": i, "path": p, "series_uid": s}, self.out_root, self.writer, self.models)
                for i, p, s in zip(batch["id"], batch["path"], batch["series_uid"])]
        return {k: [r[k] for r in rows] for k in ("id", "status", "error", "seconds")}


def _local(todo: list[Study], out: Path, writer: str, models: str) -> Iterator[dict]:
    from radscribe.serve.worker import make_session

    session = make_session()
    for s in todo:
        yield run_one(session, {"id": s.id, "path": s.path, "series_uid": s.series_uid}, str(out), writer, models)


def _ray(todo: list[Study], out: Path, writer: str, models: str, workers: int, address: str | None) -> Iterator[dict]:
    try:
        import ray
    except ImportError:
        raise RadscribeInputError("--engine ray needs Ray: pip install 'radscribe[ray]'") from None
    import os

    started_here = not ray.is_initialized()
    if started_here:
        env = {"env_vars": {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
                            "PYTHONPATH": os.environ.get("PYTHONPATH", "")}}
        kw: dict[str, Any] = {"address": address} if address else {"num_cpus": workers, "include_dashboard": False,
                                                                    "_node_ip_address": "127.0.0.1"}
        ray.init(runtime_env=env, log_to_driver=False, configure_logging=False, **kw)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ds = ray.data.from_items([{"id": s.id, "path": s.path, "series_uid": s.series_uid or ""} for s in todo],
                                 override_num_blocks=max(1, min(len(todo), 4 * workers)))
        results = ds.map_batches(AnalyzeActor, fn_constructor_args=(str(out), writer, models), batch_size=1,
                                 concurrency=workers, num_cpus=1)
        yield from results.iter_rows()
    finally:
        if started_here:
            ray.shutdown()


def run_batch(source: Path, out: Path, *, engine: str = "local", workers: int = 1, address: str | None = None,
              writer: str = "structured", models: str = "auto", limit: int | None = None,
              progress: bool = True) -> dict[str, Any]:
    """Analyse every study of ``source`` not yet done in ``out``; returns the summary (also ``summary.json``)."""
    from tqdm import tqdm

    from radscribe.report.generate import GENERATORS

    if writer not in GENERATORS:
        raise RadscribeInputError(f"unknown report writer {writer!r}; use one of {', '.join(GENERATORS)}")
    if engine not in ("local", "ray"):
        raise RadscribeInputError(f"unknown engine {engine!r}; use local or ray")
    if workers < 1:
        raise RadscribeInputError("--workers must be at least 1")
    studies = list_studies(source)[:limit] if limit else list_studies(source)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    todo = [s for s in studies if not (out / s.id / "findings.json").is_file()]
    counts = {"done": 0, "failed": 0, "skipped": len(studies) - len(todo)}
    seconds: list[float] = []
    t0 = time.perf_counter()
    rows = _local(todo, out, writer, models) if engine == "local" else _ray(todo, out, writer, models, workers,
                                                                            address)
    with open(out / LEDGER, "a", encoding="utf-8") as ledger, \
            tqdm(total=len(todo), desc=f"batch ({engine})", unit="study", disable=not progress) as bar:
        for r in rows:
            r = {k: (None if v in ("", None) else v) for k, v in dict(r).items()}
            counts[r["status"]] += 1
            seconds.append(float(r["seconds"]))
            ledger.write(json.dumps({**r, "time": time.time()}) + "\n")
            ledger.flush()
            bar.update(1)
            bar.set_postfix(failed=counts["failed"])
    wall = time.perf_counter() - t0
    summary = {"studies": len(studies), **counts, "engine": engine, "workers": workers if engine == "ray" else 1,
               "wall_s": round(wall, 3), "studies_per_s": round(len(todo) / wall, 4) if todo and wall > 0 else None,
               "mean_study_s": round(sum(seconds) / len(seconds), 4) if seconds else None}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def cli_batch(args: Any) -> int:
    from rich.console import Console
    from rich.table import Table

    s = run_batch(args.source, args.out, engine=args.engine, workers=args.workers, address=args.address,
                  writer=args.writer, models=args.models, limit=args.limit)
    table = Table(title=f"radscribe batch: {args.source}")
    for col in ("studies", "done", "skipped", "failed", "engine", "workers", "wall_s", "studies_per_s",
                "mean_study_s"):
        table.add_column(col, justify="right")
    table.add_row(*(str(s[c]) for c in ("studies", "done", "skipped", "failed", "engine", "workers", "wall_s",
                                        "studies_per_s", "mean_study_s")))
    Console(stderr=True).print(table)
    if s["failed"]:
        print(f"{s['failed']} study(ies) failed: their error lines are in {Path(args.out) / LEDGER}", file=sys.stderr)
    return 1 if s["failed"] and not s["done"] and not s["skipped"] else 0
