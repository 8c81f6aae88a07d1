"""Tests for radscribe/train/scratch.py: training the from-scratch decoder, its safetensors round trip,
and the train-scratch command's checks."""

from __future__ import annotations

import subprocess
import sys

import yaml

from radscribe.report.scratch import ScratchConfig, ScratchGenerator
from radscribe.train.scratch import build_word_vocab, encode_report, save_generator, train_decoder
from tests.report._synth import corpus, oracle

TINY = dict(d_model=64, n_heads=4, d_ff=128, enc_layers=1, dec_layers=1, dropout=0.0, max_len=24, min_count=1,
            batch_size=8, lr=3e-3, warmup_steps=5, max_epochs=40, patience=40, threads=1)


def test_word_vocab_and_report_encoding():
    words = build_word_vocab(["a b a .", "b a c"], min_count=2)
    assert words[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"] and words[4:] == ["a", "b"]
    assert encode_report(words, "a c b a", max_len=3) == [1, 4, 3, 5, 2]


def test_fit_generates_the_finding_with_its_side_and_round_trips_through_safetensors(tmp_path):
    train = corpus()
    g = train_decoder(train, val=train, config=ScratchConfig(seed=0, **TINY))
    left = g.generate([oracle("effusion", "left", "mild")])
    right = g.generate([oracle("effusion", "right", "mild")])
    assert "left pleural effusion" in left.lower() and "right pleural effusion" in right.lower()
    assert "enlarged" in g.generate([oracle("cardiomegaly")])
    assert g.history["curve"][-1]["train_loss"] < g.history["curve"][0]["train_loss"]
    save_generator(g, tmp_path / "w", command="test")
    g2 = ScratchGenerator(weights=tmp_path / "w")
    assert g2.config == g.config and g2.words == g.words
    for fs in ([], [oracle("cardiomegaly")], [oracle("effusion", "right", "mild")]):
        assert g2.generate(fs) == g.generate(fs)
    meta = yaml.safe_load((tmp_path / "w" / "config.yaml").read_text())
    assert meta["command"] == "test" and meta["training"]["stopped_by"] in ("patience", "max_epochs")


def test_checkpoint_records_the_command_and_a_stop_file_ends_training(tmp_path):
    (tmp_path / "STOP").write_text("")
    g = train_decoder(corpus(), config=ScratchConfig(seed=0, **{**TINY, "max_epochs": 5}), checkpoint=tmp_path,
                      command="radscribe train-scratch --seed 0")
    assert g.history["stopped_by"] == "STOP file" and len(g.history["curve"]) == 1
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["command"] == "radscribe train-scratch --seed 0"
    assert ScratchGenerator(weights=tmp_path).words == g.words


def test_train_scratch_refuses_a_bad_override_in_one_line(tmp_path):
    p = subprocess.run([sys.executable, "-m", "radscribe", "train-scratch", "--out", str(tmp_path / "o"),
                        "--set", "d_model=big"], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.strip() == "error: --set 'd_model=big': 'big' is not a int"
    assert not (tmp_path / "o").exists()


def test_placeholders_are_taken_out_of_the_training_targets():
    from dataclasses import replace

    from radscribe.report.scratch import DEFAULT_WEIGHTS

    # every normal report carries a de-identification placeholder sentence, as IU X-ray's often do
    train = [replace(s, reference=s.reference + " XXXX XXXX are intact.") if not s.oracle else s for s in corpus()]
    tiny = {**TINY, "max_epochs": 3}
    assert ScratchConfig().placeholders == "repair"
    g = train_decoder(train, val=train, config=ScratchConfig(seed=0, **tiny))
    assert not any("xxxx" in w for w in g.words)
    kept = train_decoder(train, val=train, config=ScratchConfig(seed=0, placeholders="keep", **tiny))
    assert "xxxx" in kept.words  # the behaviour the committed weights were trained with ...
    assert ScratchGenerator(weights=DEFAULT_WEIGHTS).config.placeholders == "keep"  # ... and say so
