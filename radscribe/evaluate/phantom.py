"""Detections scored against a phantom's known nodules: the matching rule lives in
:mod:`radscribe.data.phantom_match` (training labels use it too); re-exported here for the benchmarks."""

from radscribe.data.phantom_match import match_to_truth, match_tolerance_mm

__all__ = ["match_to_truth", "match_tolerance_mm"]
