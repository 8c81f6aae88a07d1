"""How much BLEU can a writer that sees only the findings reach on IU X-ray? Two reference points.

* ``consensus``: for each study, the training report that best agrees with the other training reports
  written for the *same* oracle findings line (mean smoothed sentence BLEU-4 against up to 200 of
  them; minimum-Bayes-risk selection). It is what a perfect findings-conditioned "most typical report"
  model would pick among real reports; it sees nothing of the test reference.
* ``oracle-pick`` (test split only, a cheat): the training report with the highest sentence BLEU-4
  against the study's own reference, i.e. the best any retrieval of one real report could do if it
  knew which radiologist's template the reference follows.
* ``findings-oracle`` (test split only, a cheat): for each oracle findings line, the one training report
  that scores best (summed sentence BLEU-4) against *all* test references of that line. Every study of
  a line gets the same text, as from any writer whose only input is the findings; so it bounds what
  such a writer reaches by choosing among real reports, with the choice made by looking at the test set.

Both are scored by radscribe's evaluator (R2Gen protocol, the same numbers as ``evaluate-reports``).

    python benchmarks/iu_report_ceiling.py --out runs/iu_report_ceiling.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

from tqdm import tqdm

from radscribe.data.iu_xray import clean_report_r2gen, load_iu
from radscribe.data.paths import shared_data_dir
from radscribe.report.mbr import ngram_counts, sentence_bleu4
from radscribe.evaluate.reports import evaluate_reports
from radscribe.report.llm_lora import findings_text

KEYS = ("BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4", "METEOR", "ROUGE_L", "CIDEr")


class Indexed:
    """A cleaned report with its n-gram counts."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = text.split()
        self.ngrams = ngram_counts(self.tokens)

    def bleu_against(self, other: Indexed) -> float:
        return sentence_bleu4(self.tokens, other.tokens, hyp_ngrams=self.ngrams, ref_ngrams=other.ngrams)


def by_findings_line(studies) -> dict[str, list]:
    """Studies grouped by their oracle findings line (what a findings-only writer sees), in input order."""
    groups: dict[str, list] = defaultdict(list)
    for st in studies:
        groups[findings_text(st.oracle)].append(st)
    return groups


def consensus_choices(train, sample: int, seed: int) -> dict[str, str]:
    """Findings line -> the training report of that line that agrees most with the others."""
    rng = random.Random(seed)
    out = {}
    for key, studies in tqdm(by_findings_line(train).items(), desc="consensus", file=sys.stderr, mininterval=5):
        reports = [clean_report_r2gen(st.reference) for st in studies]
        cache = {t: Indexed(t) for t in set(reports)}
        others = reports if len(reports) <= sample else rng.sample(reports, sample)
        out[key] = max(sorted(cache), key=lambda t: sum(cache[t].bleu_against(cache[o]) for o in others))
    return out


def findings_oracle(test, candidates: list[Indexed]) -> list[dict]:
    """Test only, a cheat: one training report per findings line, the one with the highest summed
    sentence BLEU-4 against the test references of that line."""
    recs = []
    for studies in tqdm(by_findings_line(test).values(), desc="findings-oracle", file=sys.stderr, mininterval=10):
        refs = [Indexed(clean_report_r2gen(st.reference)) for st in studies]
        best = max(candidates, key=lambda c: sum(c.bleu_against(r) for r in refs))
        recs += [{"id": st.id, "generated": best.text, "reference": st.reference} for st in studies]
    return recs


def indication_nearest(splits, annotation: Path, choice: dict[str, str], normal: str) -> dict:
    """Val only: within the study's findings line, the training report whose indication reads most like
    the study's (character 2-4-gram TF-IDF cosine). Tests whether the indication's wording tells which
    reporting template the reference follows."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    train = splits["train"]
    texts = [st.indication or "<empty>" for st in train]
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), lowercase=False).fit(texts)
    x = vec.transform(texts)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, st in enumerate(train):
        groups[findings_text(st.oracle)].append(i)
    recs = []
    for st in splits["val"]:
        idx = groups.get(findings_text(st.oracle))
        if not idx:
            recs.append({"id": st.id, "generated": normal, "reference": st.reference})
            continue
        sims = (x[idx] @ vec.transform([st.indication or "<empty>"]).T).toarray().ravel()
        recs.append({"id": st.id, "generated": train[idx[int(np.argmax(sims))]].reference, "reference": st.reference})
    return scores(recs, annotation, "val")


def scores(records: list[dict], annotation: Path, split: str) -> dict:
    m = evaluate_reports(records, annotation, split)
    return {k: round(m[k], 4) for k in KEYS} | {"CE_micro_f1": round(m["CE"]["micro"]["f1"], 4)}


def main(argv: list[str] | None = None) -> int:
    iu = shared_data_dir() / "iu_xray_reports"
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--annotation", type=Path, default=iu / "r2gen_split_annotation.json")
    p.add_argument("--reports", type=Path, default=iu / "indiana_reports.csv")
    p.add_argument("--sample", type=int, default=200, help="reports of a findings line each candidate is scored on")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    for f in (a.annotation, a.reports):
        if not f.is_file():
            print(f"error: IU X-ray file not found: {f} (set RADSCRIBE_DATA or pass --annotation/--reports)",
                  file=sys.stderr)
            return 2
    t0 = time.perf_counter()
    splits = load_iu(a.annotation, a.reports)
    choice = consensus_choices(splits["train"], a.sample, a.seed)
    normal = choice[findings_text(())]
    result: dict = {"sample": a.sample, "seed": a.seed, "n_findings_lines": len(choice)}
    consensus: dict[str, dict] = {}  # split -> id -> record
    for split in ("val", "test"):
        recs, seen = [], 0
        for st in splits[split]:
            key = findings_text(st.oracle)
            seen += key in choice
            recs.append({"id": st.id, "generated": choice.get(key, normal), "reference": st.reference})
        result[f"consensus_{split}"] = scores(recs, a.annotation, split) | {"findings_line_seen_in_train": seen,
                                                                              "n": len(recs)}
        print(split, "consensus", result[f"consensus_{split}"], file=sys.stderr)
        consensus[split] = {r["id"]: r for r in recs}
    train_reports = [Indexed(t) for t in sorted({clean_report_r2gen(s.reference) for s in splits["train"]})]
    recs = []
    for st in tqdm(splits["test"], desc="oracle-pick", file=sys.stderr, mininterval=10):
        ref = Indexed(clean_report_r2gen(st.reference))
        best = max(train_reports, key=lambda c: c.bleu_against(ref))
        recs.append({"id": st.id, "generated": best.text, "reference": st.reference})
    result["oracle_pick_test"] = scores(recs, a.annotation, "test")
    fo = findings_oracle(splits["test"], train_reports)
    result["findings_oracle_test"] = scores(fo, a.annotation, "test")
    print("test findings-oracle", result["findings_oracle_test"], file=sys.stderr)
    # where the findings-oracle's gain comes from: the studies without a coded finding all get one text
    normal_ids = {st.id for st in splits["test"] if findings_text(st.oracle) == findings_text(())}
    for part, keep in (("no_finding", lambda i: i in normal_ids), ("with_findings", lambda i: i not in normal_ids)):
        sub = [r for r in fo if keep(r["id"])]
        result[f"findings_oracle_test_{part}"] = scores(sub, a.annotation, "test") | {"n": len(sub)}
        result[f"consensus_test_{part}"] = scores([consensus["test"][r["id"]] for r in sub], a.annotation, "test") | {"n": len(sub)}
        print(f"test {part}: findings-oracle", result[f"findings_oracle_test_{part}"], "consensus",
              result[f"consensus_test_{part}"], file=sys.stderr)
    result["indication_nearest_val"] = indication_nearest(splits, a.annotation, choice, normal)
    print("val indication-nearest", result["indication_nearest_val"], file=sys.stderr)
    result["distinct_train_reports"] = len(train_reports)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    print("test oracle-pick", result["oracle_pick_test"], file=sys.stderr)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
