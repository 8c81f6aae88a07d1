"""Language metrics of generated reports, the way R2Gen computes them for IU X-ray.

R2Gen (Chen et al., EMNLP 2020; ``modules/metrics.py``) scores decoded token strings with pycocoevalcap's
``Bleu(4)``, ``Meteor()`` and ``Rouge()`` directly (no PTB tokenizer): a report is
:func:`~radscribe.data.iu_xray.clean_report_r2gen`-cleaned and split on white space, so "." is a token.
R2Gen does not compute CIDEr; later IU X-ray papers that report it add pycocoevalcap's ``Cider()`` to the
same call, and so does this module (document frequencies come from the references being scored).

``protocol="r2gen"`` reproduces two more details of R2Gen's pipeline: the reference is the tokenised
report cut to ``max_seq_length - 1`` = 59 tokens (R2Gen's IU setting is 60 including the start token) and
words outside the training vocabulary (count >= 3 in the cleaned training reports) read ``<unk>``; the
same is applied to the generated text, which an R2Gen model could not make longer or out of vocabulary.
``protocol="clean"`` only cleans (full references, no ``<unk>``).
"""

from __future__ import annotations

import shutil
from collections import Counter
from typing import Iterable, Mapping

from radscribe.data.iu_xray import clean_report_r2gen
from radscribe.errors import RadscribeInputError

R2GEN_MAX_TOKENS = 59   # R2Gen IU X-ray: --max_seq_length 60, the first position holds the start token
R2GEN_VOCAB_THRESHOLD = 3


def r2gen_vocabulary(train_reports: Iterable[str], threshold: int = R2GEN_VOCAB_THRESHOLD) -> frozenset[str]:
    """R2Gen's vocabulary: tokens of the cleaned training reports seen at least ``threshold`` times."""
    counts = Counter(tok for r in train_reports for tok in clean_report_r2gen(r).split())
    return frozenset(t for t, c in counts.items() if c >= threshold)


def prepare(text: str, *, max_tokens: int | None = None, vocab: frozenset[str] | None = None) -> str:
    """One report as the scorers see it: cleaned, white-space tokens, optionally cut and <unk>-mapped."""
    toks = clean_report_r2gen(text).split()
    if vocab is not None:
        toks = [t if t in vocab else "<unk>" for t in toks]
    if max_tokens is not None:
        toks = toks[:max_tokens]
    return " ".join(toks)


def score_nlg(refs: Mapping[str, str], gens: Mapping[str, str], *, protocol: str = "clean",
              vocab: frozenset[str] | None = None, meteor: bool = True) -> dict:
    """BLEU_1..BLEU_4, METEOR, ROUGE_L and CIDEr (pycocoevalcap) of ``gens`` against ``refs`` (same ids).

    ``protocol``: "clean" (R2Gen cleaning only) or "r2gen" (also the 59-token cut and, when ``vocab`` is
    given, <unk> for out-of-vocabulary words; see the module doc). METEOR runs Java (``java`` on PATH);
    ``meteor=False`` leaves it out (value None). Scores are corpus-level, in [0, 1] (CIDEr in [0, 10]).
    """
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge
    except ImportError:
        raise RadscribeInputError("NLG metrics need pycocoevalcap: pip install 'radscribe[text]'") from None

    if protocol not in ("clean", "r2gen"):
        raise RadscribeInputError(f"unknown NLG protocol {protocol!r}; use 'clean' or 'r2gen'")
    if set(refs) != set(gens):
        missing = sorted(set(refs) ^ set(gens))[:5]
        raise RadscribeInputError(f"references and generated reports have different ids, e.g. {missing}")
    if not refs:
        raise RadscribeInputError("no reports to score")
    kw = {"max_tokens": R2GEN_MAX_TOKENS, "vocab": vocab} if protocol == "r2gen" else {}
    ids = sorted(refs)
    gts = {i: [prepare(refs[i], **kw)] for i in ids}
    res = {i: [prepare(gens[i], **kw)] for i in ids}
    out: dict = {}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    for n, b in enumerate(bleu, start=1):
        out[f"BLEU_{n}"] = float(b)
    out["METEOR"] = _meteor(gts, res) if meteor else None
    out["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
    out["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    return out


def _meteor(gts: dict, res: dict) -> float:
    from pycocoevalcap.meteor.meteor import Meteor

    if shutil.which("java") is None:
        raise RadscribeInputError("METEOR needs Java (a 'java' on PATH; Java 8+); install it or skip METEOR")
    scorer = Meteor()
    try:
        return float(scorer.compute_score(gts, res)[0])
    finally:
        # pycocoevalcap stops its Java process only in __del__; stop it now
        scorer.meteor_p.stdin.close()
        scorer.meteor_p.kill()
        scorer.meteor_p.wait()
        scorer.meteor_p.stdout.close()
        scorer.meteor_p.stderr.close()
        scorer.__class__ = _Stopped


class _Stopped:  # a Meteor whose process is already stopped: nothing left for __del__ to do
    pass
