"""Batching helpers shared by the training loops."""

from __future__ import annotations

import random
from collections.abc import Sequence


def length_bucketed_batches(lengths: Sequence[int], size: int, rng: random.Random,
                            pool_batches: int) -> list[list[int]]:
    """Shuffled batches of indices whose items have similar lengths (less padding on CPU).

    The indices are shuffled, cut into pools of ``pool_batches * size``, sorted by length inside each
    pool and cut into batches; the batches are shuffled again. Deterministic for a seeded ``rng``.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = size * pool_batches
    batches: list[list[int]] = []
    for i in range(0, len(order), pool):
        part = sorted(order[i:i + pool], key=lambda j: lengths[j])
        batches += [part[k:k + size] for k in range(0, len(part), size)]
    rng.shuffle(batches)
    return batches
