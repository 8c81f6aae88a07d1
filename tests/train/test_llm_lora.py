"""Tests for radscribe/train/llm_lora.py: knowledge-weighted loss, batching, the training smoke run,
and the train-lora command's input checks."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
import torch
import yaml

from radscribe.report.llm_lora import WEIGHTS_DIR
from radscribe.train import llm_lora as T


def test_knowledge_weights_hit_finding_side_and_negation_tokens():
    text = "No left pleural effusion. Heart seen normal."
    # word-level offsets stand in for a tokenizer's
    offs = [(0, 2), (3, 7), (8, 15), (16, 24), (24, 25), (26, 31), (32, 36), (37, 43), (43, 44)]
    w = T.token_weights(text, offs, 3.0, T.knowledge_words())
    assert w == [3.0, 3.0, 3.0, 3.0, 1.0, 3.0, 1.0, 3.0, 1.0]


def test_weighted_loss_equals_cross_entropy_with_unit_weights_and_ignores_prompt():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 11, generator=g)
    labels = torch.tensor([[-100, -100, 3, 4, 5, -100], [-100, 1, 2, 3, 4, 5]])
    ones = torch.ones(2, 6)
    ref = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), ignore_index=-100)
    assert torch.allclose(T._weighted_loss(logits, labels, ones), ref, atol=1e-6)
    w = ones.clone()
    w[0, 3] = 5.0  # up-weighting one target token pulls the mean towards its loss
    ce = torch.nn.functional.cross_entropy(logits[0, 2:3], labels[0, 3:4])
    moved = T._weighted_loss(logits, labels, w)
    assert (moved - ref).sign() == (ce - ref).sign()


def test_batches_cover_every_example_once_and_bucket_lengths():
    enc = [([0] * n, [0] * n, [1.0] * n) for n in random.Random(0).choices(range(5, 120), k=403)]
    bs = T._batches(enc, 8, random.Random(1))
    flat = sorted(i for b in bs for i in b)
    assert flat == list(range(403))
    spread = [max(len(enc[i][0]) for i in b) - min(len(enc[i][0]) for i in b) for b in bs]
    assert sum(spread) / len(spread) < 10  # bucketed: little padding
    ids, att, lab, wts = T._collate(enc, bs[0], pad_id=7)
    assert ids.shape == att.shape == lab.shape == wts.shape and int(att.sum()) == sum(len(enc[i][0]) for i in bs[0])


@pytest.mark.slow
def test_training_smoke(tmp_path, shared_dataset):
    shared_dataset("iu_xray_reports")  # trains on the first reports of the real training split

    cfg = yaml.safe_load((WEIGHTS_DIR / "config.yaml").read_text())
    cfg["train"].update(epochs=1, batch_size=2, grad_accum=1, time_budget_min=None, warmup_steps=1)
    cfg["lora"]["top_layers"] = 2
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    out = T.train(tmp_path / "c.yaml", tmp_path / "run", limit=4)
    assert (out / "adapter_model.safetensors").is_file() and (out / "allowed_tokens.json").is_file()


def test_training_examples_have_placeholders_taken_out(shared_dataset):
    d = shared_dataset("iu_xray_reports")
    ann, rep = d / "r2gen_split_annotation.json", d / "indiana_reports.csv"
    clean, _ = T.load_examples(ann, rep)  # default: repair
    raw, _ = T.load_examples(ann, rep, placeholders="keep")
    assert sum("XXXX" in e.report for e in raw["train"]) > 500
    assert not any("XXXX" in e.report for e in clean["train"] + clean["val"])
    assert [e.report for e in clean["test"]] == [e.report for e in raw["test"]]  # evaluation text as written


def test_train_lora_refuses_a_bad_limit_and_a_missing_config(tmp_path):
    for argv, msg in ((["--limit", "0"], "error: --limit must be a positive number"),
                      (["--config", str(tmp_path / "none.yaml")], "error: config not found")):
        p = subprocess.run([sys.executable, "-m", "radscribe", "train-lora", *argv], capture_output=True, text=True)
        assert p.returncode == 2 and len(p.stderr.splitlines()) == 1 and p.stderr.startswith(msg), p.stderr
