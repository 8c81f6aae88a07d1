"""Decoding settings of the LoRA report writer compared on one split: ``radscribe compare-decoding``.

One model load; for each setting the guarded and unguarded reports for the split's oracle findings are
scored with :func:`radscribe.evaluate.reports.evaluate_reports` (R2Gen protocol).
"""

from __future__ import annotations

import json
import time

from radscribe.data.iu_xray import clean_report_r2gen, load_iu
from radscribe.errors import RadscribeInputError
from radscribe.evaluate.reports import evaluate_reports
from radscribe.io.output import atomic_file
from radscribe.report.consistency import guard
from radscribe.report.llm_lora import WEIGHTS_DIR, LoraGenerator


_SETTING_TYPES = {"num_beams": int, "constrained": lambda v: str(v).lower() in ("1", "true", "yes", "c"),
                  "length_penalty": float, "repetition_penalty": float, "no_repeat_ngram_size": int,
                  "max_new_tokens": int, "min_new_tokens": int, "mbr_samples": int, "mbr_temperature": float,
                  "mbr_top_p": float}


def parse_settings(text: str) -> list[dict]:
    """Decoding settings for ``compare``: ``;``-separated, each ``key=value,key=value`` (keys of the
    config's ``decode`` section), or the short form ``beams:c|u`` (constrained / unconstrained)."""
    out = []
    for item in filter(None, (x.strip() for x in text.split(";"))):
        if "=" not in item:  # short form, possibly several comma-separated
            for short in filter(None, (y.strip() for y in item.split(","))):
                b, _, c = short.partition(":")
                if not b.isdigit() or c not in ("c", "u", ""):
                    raise RadscribeInputError(f"bad decoding setting {short!r}; use beams:c|u or key=value,...")
                out.append({"num_beams": int(b), "constrained": c != "u"})
            continue
        d = {}
        for kv in item.split(","):
            k, _, v = kv.partition("=")
            k = k.strip()
            if k not in _SETTING_TYPES:
                raise RadscribeInputError(f"unknown decoding key {k!r}; known: {sorted(_SETTING_TYPES)}")
            try:
                d[k] = _SETTING_TYPES[k](v.strip())
            except ValueError:
                raise RadscribeInputError(f"bad value for {k}: {v!r}") from None
        out.append(d)
    if not out:
        raise RadscribeInputError("no decoding settings given")
    return out


def _length_ratio(records: list[dict]) -> float:
    """Generated / reference length in R2Gen-cleaned words (BLEU's brevity penalty starts below 1)."""
    hyp = sum(len(clean_report_r2gen(r["generated"]).split()) for r in records)
    ref = sum(len(clean_report_r2gen(r["reference"]).split()) for r in records)
    return hyp / max(1, ref)


def compare_decoding(args) -> dict:
    """Score several decoding settings on one split with one model load; writes ``args.out`` (JSON).

    Each setting: guarded reports for the split's oracle findings, then BLEU/METEOR/ROUGE-L/CIDEr and
    CE with :func:`radscribe.evaluate.reports.evaluate_reports` (R2Gen protocol).
    """
    settings = parse_settings(args.settings)  # before the model load: a typo fails at once
    studies = list(load_iu(args.annotation, args.reports)[args.split])[: args.limit]
    gen = LoraGenerator(weights=args.weights, threads=args.threads, batch_size=args.batch_size)
    gen.fit()
    results = []
    for st in settings:
        gen.set_decoding(reset=True, **st)
        t = time.perf_counter()
        texts = gen.generate_many([s.oracle for s in studies])
        wall = time.perf_counter() - t
        recs, n_corr = [], 0
        for s, text in zip(studies, texts):
            g = guard(text, s.oracle)
            n_corr += g.n_corrections
            recs.append({"id": s.id, "generated": g.text, "reference": s.reference})
        raw = [{"id": s.id, "generated": text, "reference": s.reference} for s, text in zip(studies, texts)]
        m = evaluate_reports(recs, args.annotation, args.split)
        u = evaluate_reports(raw, args.annotation, args.split)
        row = {**st, "n": len(studies), "generation_wall_s": round(wall, 1),
               "length_ratio": {"guarded": round(_length_ratio(recs), 3), "unguarded": round(_length_ratio(raw), 3)},
               "guard_corrections_per_report": round(n_corr / len(studies), 3),
               "guarded": {k: m[k] for k in ("BLEU_1", "BLEU_4", "METEOR", "ROUGE_L", "CIDEr")} | {"CE_micro_f1": m["CE"]["micro"]["f1"]},
               "unguarded": {k: u[k] for k in ("BLEU_1", "BLEU_4", "METEOR", "ROUGE_L", "CIDEr")} | {"CE_micro_f1": u["CE"]["micro"]["f1"]}}
        print(json.dumps(row), flush=True)
        row["texts"] = {s.id: text for s, text in zip(studies, texts)}  # unguarded, for error analysis
        results.append(row)
    out = {"split": args.split, "limit": args.limit, "weights": str(args.weights), "settings": results}
    with atomic_file(args.out) as fh:
        json.dump(out, fh, indent=1)
    return out


def cli_compare_decoding(args) -> int:
    """``radscribe compare-decoding``: score decoding settings on a split (one model load)."""
    for f, what in ((args.annotation, "--annotation"), (args.reports, "--reports")):
        if not f.is_file():
            raise RadscribeInputError(f"{what} file {f} does not exist")
    if args.limit is not None and args.limit < 1:
        raise RadscribeInputError("--limit must be a positive number of studies")
    if args.weights is None:
        args.weights = WEIGHTS_DIR
    compare_decoding(args)
    return 0
