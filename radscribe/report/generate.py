"""Report generators behind one interface, their registry, and ``radscribe generate-reports``.

Every generator has ``name``, ``fit(train_studies)`` and ``generate(findings, indication) -> str``.
``GENERATORS`` maps the fixed names to ``"module:Class"`` strings imported only when asked for, so
choosing ``most-common`` never loads torch or a language model.

``generate-reports`` fits the chosen generator on the IU X-ray train split only, writes one report
per study of the requested split from the study's oracle (MeSH) findings or from the findings read
off its indication, passes every report through the consistency guard (unless ``--no-guard``),
and writes JSONL lines ``{id, generated, reference, n_corrections, ...}`` atomically.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

from tqdm import tqdm

from radscribe.data.iu_xray import IUStudy, load_iu
from radscribe.errors import RadscribeInputError
from radscribe.findings.model import Finding
from radscribe.io.output import atomic_file
from radscribe.report.consistency import guard
from radscribe.report.prompting import sorted_findings
from radscribe.report.structured import write_structured


@runtime_checkable
class ReportGenerator(Protocol):
    """What every report writer offers."""

    name: str

    def fit(self, train: Sequence[IUStudy]) -> None:
        """Learn whatever the generator needs from training studies (a no-op for rule writers)."""

    def generate(self, findings: Sequence[Finding], indication: str | None = None) -> str:
        """One report (findings + impression prose) for a study with these findings."""


GENERATORS: dict[str, str] = {
    "structured": "radscribe.report.generate:StructuredGenerator",
    "most-common": "radscribe.report.baselines:MostCommonGenerator",
    "retrieval": "radscribe.report.baselines:RetrievalGenerator",
    "scratch": "radscribe.report.scratch:ScratchGenerator",
    "llm-lora": "radscribe.report.llm_lora:LoraGenerator",
    "llm-server": "radscribe.report.llm_server:ServerGenerator",
}


def generator_class(name: str) -> type:
    """The class registered under ``name`` (imported now); RadscribeInputError for unknown names."""
    if name not in GENERATORS:
        raise RadscribeInputError(f"unknown report generator {name!r}; known: {', '.join(GENERATORS)}")
    module, cls = GENERATORS[name].split(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise RadscribeInputError(f"report generator {name!r} is not available: {exc}") from exc
    return getattr(mod, cls)


def make_generator(name: str, **kw: Any) -> ReportGenerator:
    """Build the generator registered under ``name`` with keyword arguments for its constructor."""
    return generator_class(name)(**kw)


class StructuredGenerator:
    """The deterministic structured writer as a generator: findings prose + impression.

    R2Gen-style IU X-ray references are the findings section followed by the impression, so the
    text is the two concatenated. Pertinent negatives and chest X-ray normal statements come from
    :func:`radscribe.report.structured.write_structured`.
    """

    name = "structured"

    def __init__(self, region: str = "chest", modality: str | None = "CR") -> None:
        self.region = region
        self.modality = modality

    def fit(self, train: Sequence[IUStudy]) -> None:
        return None

    def generate(self, findings: Sequence[Finding], indication: str | None = None) -> str:
        # sorted so that the same finding set gives the same text whatever order it came in
        rep = write_structured(sorted_findings(findings), region=self.region, modality=self.modality, assume_complete=True)
        # a multi-line impression is numbered ("1. ...\n2. ..."); references carry it as plain sentences
        imp = [re.sub(r"^\d+\.\s+", "", line.strip()) for line in rep.impression.splitlines()]
        return " ".join(s.strip() for s in [rep.findings, *imp] if s and s.strip())


# ----------------------------------------------------------------------------------------- CLI

def _generator_kwargs(name: str, args) -> dict[str, Any]:
    """Constructor arguments the CLI can pass to each generator."""
    cls = generator_class(name)

    params = inspect.signature(cls.__init__).parameters
    kw: dict[str, Any] = {}
    if "seed" in params:
        kw["seed"] = args.seed
    weights = getattr(args, "weights", None)
    if weights is not None:
        if "weights" not in params:
            raise RadscribeInputError(f"--weights does not apply to the {name!r} generator")
        kw["weights"] = Path(weights)
    return kw


def cli_generate_reports(args) -> int:
    """``radscribe generate-reports``: one guarded report per study of a split, as JSONL."""
    gen_kw = _generator_kwargs(args.generator, args)  # fails early on an unknown name
    for p, what in ((args.annotation, "--annotation"), (args.reports, "--reports")):
        if not Path(p).is_file():
            raise RadscribeInputError(f"{what} file {p} does not exist")
    if args.limit is not None and args.limit < 1:
        raise RadscribeInputError("--limit must be a positive number of studies")
    splits = load_iu(args.annotation, args.reports)
    studies = list(splits[args.split])
    if args.limit is not None:
        studies = studies[: args.limit]
    use_guard = not getattr(args, "no_guard", False)

    gen = make_generator(args.generator, **gen_kw)
    t0 = time.perf_counter()
    gen.fit(splits["train"])
    fit_s = time.perf_counter() - t0

    def findings_of(st):
        return st.oracle if args.findings == "oracle" else st.from_indication

    # Generators that batch (llm-lora) get chunks of studies; their time per report is the chunk's mean.
    texts: dict[str, str] = {}
    times: dict[str, float] = {}
    batch = getattr(gen, "generate_many", None)
    if batch is not None:
        chunk = 32
        bar = tqdm(total=len(studies), desc=f"{args.generator}/{args.findings}", unit="study", file=sys.stderr)
        for i in range(0, len(studies), chunk):
            part = studies[i:i + chunk]
            t = time.perf_counter()
            outs = batch([findings_of(st) for st in part])
            dt = (time.perf_counter() - t) / len(part)
            for st, text in zip(part, outs):
                texts[st.id], times[st.id] = text, dt
            bar.update(len(part))
        bar.close()
        studies_iter = studies
    else:
        studies_iter = tqdm(studies, desc=f"{args.generator}/{args.findings}", unit="study", file=sys.stderr)

    rows, gen_times, n_corr = [], [], 0
    for st in studies_iter:
        findings = findings_of(st)
        if st.id in texts:
            text = texts[st.id]
            gen_times.append(times[st.id])
        else:
            t = time.perf_counter()
            text = gen.generate(findings, indication=st.indication)
            gen_times.append(time.perf_counter() - t)
        row = {"id": st.id, "generated": text, "reference": st.reference, "n_corrections": 0}
        last = getattr(gen, "last", None) if st.id not in texts else None
        if getattr(last, "path", None):  # llm-server: "server" or "fallback" (the structured writer answered)
            row["source"] = last.path
            if last.reason:
                row["source_reason"] = last.reason
        row["gen_ms"] = round(1000 * gen_times[-1], 3)
        if use_guard:
            t = time.perf_counter()
            g = guard(text, findings)
            row.update(generated=g.text, n_corrections=g.n_corrections, unguarded=text,
                       n_dropped=len(g.dropped), n_added=len(g.added),
                       guard_ms=round(1000 * (time.perf_counter() - t), 3))
            n_corr += g.n_corrections
        rows.append(row)

    with atomic_file(args.out) as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    n = len(rows)
    mean_ms = 1000 * sum(gen_times) / max(n, 1)
    changed = sum(1 for r in rows if r["n_corrections"] > 0)
    print(f"{args.generator} ({args.findings} findings, {args.split}): {n} reports -> {args.out}; "
          f"fit {fit_s:.1f} s, generation {mean_ms:.1f} ms/report; "
          + (f"guard: {n_corr} corrections, {changed}/{n} reports changed" if use_guard else "guard off")
          + (f"; answers: {gen.counts}" if isinstance(getattr(gen, "counts", None), dict) else ""),
          file=sys.stderr)
    return 0
