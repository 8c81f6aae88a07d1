"""Clinical efficacy on a tiny example computed by hand."""

from __future__ import annotations

import pytest

from radscribe.evaluate.clinical import LABELS, chexpert_vector, clinical_efficacy


def test_chexpert_vector_uncertain_is_zero():
    v = chexpert_vector("Left basilar opacity which may represent atelectasis. Small left pleural effusion.")
    on = {LABELS[i] for i in range(len(LABELS)) if v[i]}
    assert on == {"Lung Opacity", "Pleural Effusion"}     # atelectasis is uncertain -> 0; No Finding 0


def test_clinical_efficacy_by_hand():
    refs = {"1": "Mild cardiomegaly. No pleural effusion.",        # Cardiomegaly
            "2": "Small left pleural effusion.",                   # Pleural Effusion
            "3": "No acute cardiopulmonary disease."}              # No Finding
    gens = {"1": "Cardiomegaly. Small right pleural effusion.",    # Cardiomegaly, Pleural Effusion
            "2": "No pleural effusion. May represent atelectasis.",  # nothing positive; uncertain -> not No Finding
            "3": "The lungs are clear. Normal chest."}             # No Finding
    ce = clinical_efficacy(refs, gens)
    # 3 reference positives, 3 predicted, 2 agree (Cardiomegaly of 1, No Finding of 3)
    assert ce["micro"]["precision"] == pytest.approx(2 / 3)
    assert ce["micro"]["recall"] == pytest.approx(2 / 3)
    assert ce["micro"]["f1"] == pytest.approx(2 / 3)
    # macro over all 14 labels (sklearn, zero_division=0): Cardiomegaly 1, No Finding 1, the rest 0
    for m in ("precision", "recall", "f1"):
        assert ce["macro"][m] == pytest.approx(2 / 14)
    pe = ce["per_label"]["Pleural Effusion"]
    assert (pe["support"], pe["predicted"], pe["f1"]) == (1, 1, 0.0)
    assert ce["n"] == 3 and ce["labels"] == list(LABELS)
