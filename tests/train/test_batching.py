import random

from radscribe.train.batching import length_bucketed_batches


def test_every_index_once_similar_lengths_together_and_deterministic():
    lengths = [random.Random(1).randint(1, 100) for _ in range(250)]
    b1 = length_bucketed_batches(lengths, 8, random.Random(0), pool_batches=5)
    b2 = length_bucketed_batches(lengths, 8, random.Random(0), pool_batches=5)
    assert b1 == b2
    assert sorted(i for b in b1 for i in b) == list(range(250))
    assert all(len(b) <= 8 for b in b1)
    # inside a batch the lengths are sorted neighbours of one pool: spread far below the global range
    spreads = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in b1 if len(b) == 8]
    assert sum(spreads) / len(spreads) < 25
