"""De-identification placeholders can never be generated: the logits ban, the word ban, the copy filter."""

from __future__ import annotations

import pytest
import torch

from radscribe.report.placeholders import PlaceholderBan, banned_word_ids, has_placeholder, strip_placeholders

# a toy BPE-like vocabulary: "XXXX" can be spelled as one token, two "XX", "X" + "XXX", four "X" ...
PIECES = ["<pad>", "ĠThe", "Ġlungs", "ĠXXXX", "XX", "X", "XXX", "Ġx", "-", "ray", "Ġ10", "ĠX", "Xa", ".", "Ġxx"]


def _ban_mask(ban, prefix):
    scores = torch.zeros(1, len(PIECES))
    out = ban(torch.tensor([prefix]), scores)
    return {PIECES[i] for i in range(len(PIECES)) if torch.isinf(out[0, i])}


def test_a_token_holding_three_xs_is_always_banned():
    ban = PlaceholderBan(PIECES)
    assert _ban_mask(ban, [1, 2]) == {"ĠXXXX", "XXX"}


@pytest.mark.parametrize("prefix,extra", [
    ([1, 11], {"XX"}),                # "... X" + "XX" would be "XXX" ("Xa" makes only "XXa")
    ([1, 11, 5], {"XX", "X", "Xa"}),  # "... XX" + any leading x
    ([1, 14], {"XX", "X", "Xa"}),     # " xx" (lower case counts too)
    ([1, 4], {"XX", "X", "Xa"}),      # "XX" then any leading x
])
def test_a_token_completing_a_run_of_three_is_banned(prefix, extra):
    ban = PlaceholderBan(PIECES)
    run = ban.trailing_x(prefix)
    got = _ban_mask(ban, prefix) - {"ĠXXXX", "XXX"}
    if run == 1:
        assert got == {"XX"}          # one x so far: only two more x's complete "xxx"
    else:
        assert run == 2 and got == extra


def test_single_xs_stay_allowed():
    ban = PlaceholderBan(PIECES)
    assert ban.trailing_x([10, 7]) == 1          # "10 x"
    assert "Ġ10" not in _ban_mask(ban, [10, 7])  # "10 x 10 mm" can be written
    assert "-" not in _ban_mask(ban, [7]) and "ray" not in _ban_mask(ban, [7, 8])  # "x-ray"


def test_the_ban_works_inside_beam_search_sized_batches():
    ban = PlaceholderBan(PIECES)
    scores = torch.zeros(3, len(PIECES) + 2)   # the model's vocabulary may be larger than the tokenizer's
    out = ban(torch.tensor([[1, 2], [1, 11], [1, 4]]), scores)
    assert torch.isinf(out[1, PIECES.index("XX")]) and torch.isfinite(out[0, PIECES.index("XX")])
    assert torch.isfinite(out[:, len(PIECES):]).all()


def test_word_vocabulary_ban_and_the_committed_scratch_vocabulary():
    import json

    from radscribe.report.scratch import DEFAULT_WEIGHTS

    assert banned_word_ids(["<pad>", "the", "xxxx", "x-xxxx", "x", "xxxx-a-xxxx", "<unk>"]) == [2, 3, 5, 6]
    words = json.loads((DEFAULT_WEIGHTS / "vocab.json").read_text())["words"]
    assert {words[i] for i in banned_word_ids(words)} == {"<unk>", "xxxx", "xxxx-a-xxxx", "x-xxxx"}


def test_copied_text_is_mended_or_its_sentence_dropped():
    assert strip_placeholders("Normal chest x-XXXX. The lungs are clear.") == "Normal chest x-ray. The lungs are clear."
    assert strip_placeholders("There is scarring in the right hilar lymph XXXX. Heart normal. XXXX XXXX.") == \
        "There is scarring in the right hilar lymph nodes. Heart normal."
    assert strip_placeholders("The XXXX are intact. No effusion.") == "No effusion."
    assert strip_placeholders("No effusion.") == "No effusion."
    assert has_placeholder("calcified x-xxxx") and has_placeholder("name ___") and not has_placeholder("10 x 8 mm")


def test_copying_generators_never_return_a_placeholder(shared_dataset):
    from radscribe.data.iu_xray import load_iu
    from radscribe.report.baselines import MostCommonGenerator, RetrievalGenerator

    d = shared_dataset("iu_xray_reports")
    splits = load_iu(d / "r2gen_split_annotation.json", d / "indiana_reports.csv")
    ret, common = RetrievalGenerator(), MostCommonGenerator()
    ret.fit(splits["train"])
    common.fit(splits["train"])
    texts = [ret.generate(s.oracle) for s in splits["test"][:150]] + [common.generate([])]
    assert texts and not any(has_placeholder(t) for t in texts)
