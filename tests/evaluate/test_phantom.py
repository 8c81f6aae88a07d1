"""Tests for radscribe/evaluate/phantom.py: detections matched to a phantom's known nodules."""

from __future__ import annotations

from radscribe.evaluate.phantom import match_to_truth, match_tolerance_mm


def test_match_to_truth_pairs_closest_first_and_uses_each_once():
    truth = [{"center_patient": [0, 0, 0], "diameter_mm": 10.0},   # tolerance 5 mm
             {"center_patient": [4, 0, 0], "diameter_mm": 2.0}]    # tolerance 3 mm (the floor)
    assert match_tolerance_mm(truth[1]) == 3.0
    # detection 0 is 3.5 mm from nodule 0 and 0.5 mm from nodule 1: it goes to nodule 1 (closest pair),
    # detection 1 is 4.5 mm from nodule 0 (inside 5 mm); detection 2 is nowhere near.
    pairs = match_to_truth(truth, [[3.5, 0, 0], [-4.5, 0, 0], [50, 0, 0]])
    assert sorted((i, j) for i, j, _ in pairs) == [(0, 1), (1, 0)]
    assert match_to_truth(truth, []) == []
