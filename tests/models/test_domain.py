"""The domain classifier's inference side: its input size travels in its config; training lives apart."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from radscribe.cli import main
from radscribe.models import domain
from radscribe.train.domain import save_classifier, synthetic_other


def test_committed_classifier_loads_with_its_input_size():
    clf = domain.load_domain_classifier()
    cfg = yaml.safe_load((domain.WEIGHTS_DIR / "config.yaml").read_text())
    assert clf.input_size == cfg["input_size"] and clf.classes == domain.DOMAINS
    assert clf.coef.shape == (len(domain.DOMAINS), 1280)


def test_save_and_load_round_trip_keeps_the_input_size(tmp_path):
    rng = np.random.default_rng(0)
    clf = domain.DomainClassifier(np.zeros(1280), np.ones(1280), rng.normal(0, 0.01, (5, 1280)), np.zeros(5),
                                  domain.DOMAINS, 0.6, input_size=64)
    save_classifier(clf, tmp_path, {"name": "domain", "input_size": 64})
    back = domain.load_domain_classifier(tmp_path)
    assert back.input_size == 64 and np.allclose(back.coef, clf.coef)
    (pred,) = back.predict_arrays([synthetic_other(rng, 96)])
    assert set(pred.probs) == set(domain.DOMAINS) and abs(sum(pred.probs.values()) - 1) < 1e-5


def test_missing_weights_are_a_config_error(tmp_path):
    with pytest.raises(domain.ConfigError, match="radscribe domain train"):
        domain.load_domain_classifier(tmp_path / "nothing")


def test_domain_subcommand_refuses_a_silly_input_size(capsys):
    assert main(["domain", "train", "--input-size", "4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --input-size") and len(err.strip().splitlines()) == 1
