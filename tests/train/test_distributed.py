"""Data-parallel training: two gloo processes on tiny data end with identical weights, and resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from radscribe.train import distributed as dd
from radscribe.train.config import TrainConfig
from radscribe.train.loop import fit
from tests.train.test_loop import _squares

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available in this build")


class TinyBN(nn.Module):
    """(B, 1, 16, 16) -> 2 logits, with BatchNorm so that buffer synchronisation is exercised."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(F.relu(self.bn(self.conv(x))).mean((2, 3)))

    def loss(self, logits, y):
        return F.cross_entropy(logits, y)


def _cfg() -> TrainConfig:
    return TrainConfig(epochs=4, batch_size=8, lr=0.05, monitor="val_loss", patience=10, ema_decay=0.9)


def _worker(rank: int, world: int, rdv: str, run_dir: str, out: str, resume: bool, stop_after) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rdv}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)  # the same initial weights on every rank
        model = TinyBN()
        if resume:  # a different init: everything must come from the checkpoint
            torch.manual_seed(123)
            model = TinyBN()
        fit(model, _squares(48, 0), _squares(16, 1), _cfg(), run_dir, resume=resume, progress=False,
            stop_after=stop_after)
        torch.save({k: v.clone() for k, v in model.state_dict().items()}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _spawn(tmp_path, name: str, run_dir, resume=False, stop_after=None):
    out = tmp_path / name
    out.mkdir()
    mp.spawn(_worker, args=(2, str(tmp_path / f"rdv-{name}"), str(run_dir), str(out), resume, stop_after),
             nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in (0, 1)]


def test_two_ranks_end_identical_and_a_resumed_run_continues(tmp_path):
    r0, r1 = _spawn(tmp_path, "full", tmp_path / "a")
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k  # parameters (all-reduced) and BN buffers (synchronised)
    assert not torch.equal(r0["bn.running_mean"], torch.zeros(4))  # the buffers did train

    _spawn(tmp_path, "part", tmp_path / "b", stop_after=2)
    import json

    assert [h["epoch"] for h in json.loads((tmp_path / "b" / "history.json").read_text())] == [1, 2]
    _spawn(tmp_path, "resumed", tmp_path / "b", resume=True)
    a, b = load_file(str(tmp_path / "a" / "last.safetensors")), load_file(str(tmp_path / "b" / "last.safetensors"))
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
    ea, eb = (load_file(str(tmp_path / d / "last_ema.safetensors")) for d in ("a", "b"))
    for k in ea:
        assert torch.allclose(ea[k], eb[k], atol=1e-5), k


def test_single_process_helpers_are_no_ops():
    assert dd.world() == (0, 1) and dd.is_main()
    m = TinyBN()
    assert dd.wrap(m) is m
    idx = np.arange(10)
    assert dd.shard(idx, 0, 1) is idx
    assert dd.sum_all(1.0, 2) == (1.0, 2)
    assert not dd.init_from_env()  # WORLD_SIZE unset
