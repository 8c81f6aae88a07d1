"""NLG metrics equal pycocoevalcap's own numbers on R2Gen-cleaned text."""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("pycocoevalcap", reason="NLG metrics need the 'text' extra (pycocoevalcap)")

from pycocoevalcap.bleu.bleu import Bleu  # noqa: E402
from pycocoevalcap.cider.cider import Cider  # noqa: E402
from pycocoevalcap.meteor.meteor import Meteor  # noqa: E402
from pycocoevalcap.rouge.rouge import Rouge  # noqa: E402

from radscribe.data.iu_xray import clean_report_r2gen  # noqa: E402
from radscribe.errors import RadscribeInputError  # noqa: E402
from radscribe.evaluate.nlg import R2GEN_MAX_TOKENS, prepare, r2gen_vocabulary, score_nlg  # noqa: E402

REFS = {
    "a": "The heart is normal in size. The mediastinum is unremarkable. The lungs are clear.",
    "b": "Mild cardiomegaly. Small left pleural effusion. No pneumothorax.",
    "c": "Left basilar opacity, XXXX atelectasis. No acute bony abnormality.",
}
GENS = {
    "a": "The heart is normal in size. The lungs are clear.",
    "b": "Cardiomegaly. Small right pleural effusion. No pneumothorax is seen.",
    "c": "The lungs are clear. No acute disease.",
}


def _coco(refs, gens):
    gts = {k: [" ".join(clean_report_r2gen(v).split())] for k, v in refs.items()}
    res = {k: [" ".join(clean_report_r2gen(v).split())] for k, v in gens.items()}
    b, _ = Bleu(4).compute_score(gts, res, verbose=0)
    return gts, res, {"BLEU_1": b[0], "BLEU_2": b[1], "BLEU_3": b[2], "BLEU_4": b[3],
                      "ROUGE_L": Rouge().compute_score(gts, res)[0], "CIDEr": Cider().compute_score(gts, res)[0]}


def test_equals_pycocoevalcap_without_meteor():
    _, _, want = _coco(REFS, GENS)
    got = score_nlg(REFS, GENS, meteor=False)
    assert got["METEOR"] is None
    for k, v in want.items():
        assert got[k] == pytest.approx(v, abs=1e-12), k
    assert 0 < got["BLEU_4"] < got["BLEU_1"] < 1


@pytest.mark.skipif(shutil.which("java") is None, reason="METEOR needs Java")
def test_meteor_is_pycocoevalcaps(monkeypatch):
    """One Java start: record what score_nlg hands pycocoevalcap's Meteor and what it answers."""
    import pycocoevalcap.meteor.meteor as mm

    seen = {}

    class Recording(Meteor):
        def compute_score(self, gts, res):
            seen["args"] = (gts, res)
            seen["out"] = super().compute_score(gts, res)
            return seen["out"]

    monkeypatch.setattr(mm, "Meteor", Recording)
    refs, gens = {"b": REFS["b"]}, {"b": GENS["b"]}
    got = score_nlg(refs, gens)["METEOR"]
    gts, res, _ = _coco(refs, gens)
    assert seen["args"] == (gts, res)
    assert got == pytest.approx(seen["out"][0], abs=1e-12)
    assert 0.2 < got < 0.9       # similar but not identical sentences


def test_identical_reports_score_one():
    got = score_nlg(REFS, REFS, meteor=False)
    for k in ("BLEU_1", "BLEU_4", "ROUGE_L"):
        assert got[k] == pytest.approx(1.0, abs=1e-6)


def test_r2gen_protocol_cut_and_unk():
    vocab = r2gen_vocabulary(["the lungs are clear."] * 3 + ["rare words here."])
    assert "rare" not in vocab and "lungs" in vocab and "." in vocab
    assert prepare("The lungs are rare.", vocab=vocab) == "the lungs are <unk> ."
    long = " ".join(["The lungs are clear."] * 40)
    assert len(prepare(long, max_tokens=R2GEN_MAX_TOKENS).split()) == 59
    # the cut changes scores only for long reports
    full = score_nlg({"x": long}, {"x": "The lungs are clear."}, meteor=False)
    cut = score_nlg({"x": long}, {"x": "The lungs are clear."}, protocol="r2gen", meteor=False)
    assert cut["ROUGE_L"] > full["ROUGE_L"]


def test_bad_input():
    with pytest.raises(RadscribeInputError, match="different ids"):
        score_nlg({"a": "x"}, {"b": "x"}, meteor=False)
    with pytest.raises(RadscribeInputError, match="no reports"):
        score_nlg({}, {}, meteor=False)
