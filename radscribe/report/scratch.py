"""A from-scratch transformer that writes an IU X-ray style report from a finding list.

The R2Gen-style baseline without images: an encoder over the finding tokens of
:func:`radscribe.report.prompting.finding_tokens` and a pre-LN transformer decoder (3 layers,
d=256 by default) over a word-level vocabulary built from the R2Gen-cleaned training reports with
minimum count 3, as R2Gen does. Trained with teacher forcing and cross-entropy, early stopping on
the validation loss; decoding is batched beam search (beam 3, repeated-trigram blocking as in
R2Gen) with cached keys/values, so a report costs one decoder step per word.

Train (2 CPU cores, about 10 minutes)::

    python -m radscribe.report.scratch --seed 0 --out radscribe/report/weights/scratch

which writes ``model.safetensors``, ``vocab.json`` and ``config.yaml`` (config, exact command,
training curve, wall time). :class:`ScratchGenerator` loads that folder (the committed seed-0 weights
by default) or trains in ``fit`` when constructed with ``weights=None``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import shlex
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from radscribe.errors import ConfigError, RadscribeInputError
from radscribe.findings.model import Finding
from radscribe.knowledge.ontology import ANATOMY, ATTRIBUTES, FINDING_KINDS, SIDES
from radscribe.report.prompting import NORMAL_TOKEN, SEP_TOKEN, finding_tokens

if TYPE_CHECKING:  # pragma: no cover
    from radscribe.data.iu_xray import IUStudy

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "scratch"
PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)


@dataclass
class ScratchConfig:
    """Model size, vocabulary and training settings (saved beside the weights)."""

    d_model: int = 256
    n_heads: int = 8
    d_ff: int = 512
    enc_layers: int = 1
    dec_layers: int = 3
    dropout: float = 0.1
    max_len: int = 60            # words per report, R2Gen's max_seq_length for IU X-ray
    min_count: int = 3           # vocabulary threshold, as R2Gen
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    max_epochs: int = 20
    patience: int = 3            # epochs without val-loss improvement before stopping
    time_limit_s: float = 3600.0  # stop training after this many wall seconds
    val_fraction: float = 0.1    # used only when fit() gets no validation studies
    beam: int = 3
    length_alpha: float = 0.0    # beam score = logp / len**alpha
    block_trigrams: bool = True
    seed: int = 0
    threads: int = 1

    @classmethod
    def from_dict(cls, d: dict) -> "ScratchConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown scratch config keys {sorted(unknown)}; known: {sorted(names)}")
        return cls(**d)


# ------------------------------------------------------------------------------ vocabularies

def source_vocab() -> list[str]:
    """Finding-token vocabulary, derived from the ontology (so it never depends on the data)."""
    toks = [PAD, UNK, NORMAL_TOKEN, SEP_TOKEN]
    for k in FINDING_KINDS:
        toks += [k, f"no:{k}"]
    toks += [f"side:{s}" for s in SIDES] + [f"loc:{a}" for a in ANATOMY]
    for name, values in ATTRIBUTES.items():
        toks += [f"{name[:4]}:{v}" for v in values]
    return list(dict.fromkeys(toks))


def build_word_vocab(texts: Sequence[str], min_count: int) -> list[str]:
    """Specials + every word of the cleaned texts seen at least ``min_count`` times, most frequent first."""
    counts: dict[str, int] = {}
    for t in texts:
        for w in t.split():
            counts[w] = counts.get(w, 0) + 1
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return list(SPECIALS) + words


def detokenize(words: Sequence[str]) -> str:
    """``the heart is normal . no effusion .`` -> ``The heart is normal. No effusion.``"""
    sents, cur = [], []
    for w in words:
        if w == ".":
            if cur:
                sents.append(" ".join(cur))
            cur = []
        else:
            cur.append(w)
    if cur:
        sents.append(" ".join(cur))
    return " ".join(s[:1].upper() + s[1:] + "." for s in sents)


# ------------------------------------------------------------------------------------ model

class Attention(nn.Module):
    """Multi-head attention with an optional key/value cache for step-by-step decoding."""

    def __init__(self, d: int, h: int, dropout: float) -> None:
        super().__init__()
        self.h, self.dh = h, d // h
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.p = dropout

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.h, self.dh).transpose(1, 2)

    def forward(self, x, kv=None, mask=None, causal=False, cache=None, static=False):
        q = self._split(self.q(x))
        if static and cache is not None and "k" in cache:
            k, v = cache["k"], cache["v"]
        else:
            src = x if kv is None else kv
            k, v = self._split(self.k(src)), self._split(self.v(src))
            if cache is not None:
                if not static and "k" in cache:
                    k, v = torch.cat([cache["k"], k], 2), torch.cat([cache["v"], v], 2)
                cache["k"], cache["v"] = k, v
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                           dropout_p=self.p if self.training else 0.0)
        b, _, t, _ = y.shape
        return self.o(y.transpose(1, 2).reshape(b, t, self.h * self.dh))


class DecoderLayer(nn.Module):
    def __init__(self, d: int, h: int, ff: int, dropout: float) -> None:
        super().__init__()
        self.self_attn, self.cross_attn = Attention(d, h, dropout), Attention(d, h, dropout)
        self.n1, self.n2, self.n3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x, memory, mem_mask, cache=None):
        sc = None if cache is None else cache.setdefault("self", {})
        cc = None if cache is None else cache.setdefault("cross", {})
        x = x + self.drop(self.self_attn(self.n1(x), causal=cache is None and x.shape[1] > 1, cache=sc))
        x = x + self.drop(self.cross_attn(self.n2(x), kv=memory, mask=mem_mask, cache=cc, static=True))
        return x + self.drop(self.ff(self.n3(x)))


class ReportDecoder(nn.Module):
    """Finding-token encoder + word decoder. ``loss(src, tgt)`` is the teacher-forced cross-entropy."""

    def __init__(self, cfg: ScratchConfig, n_src: int, n_words: int) -> None:
        super().__init__()
        d = cfg.d_model
        self.cfg = cfg
        self.src_emb = nn.Embedding(n_src, d, padding_idx=0)
        enc_layer = nn.TransformerEncoderLayer(d, cfg.n_heads, cfg.d_ff, cfg.dropout, batch_first=True,
                                               norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(enc_layer, cfg.enc_layers, enable_nested_tensor=False)
        self.enc_norm = nn.LayerNorm(d)
        self.word_emb = nn.Embedding(n_words, d, padding_idx=0)
        self.pos = nn.Embedding(cfg.max_len + 2, d)
        self.layers = nn.ModuleList(DecoderLayer(d, cfg.n_heads, cfg.d_ff, cfg.dropout)
                                    for _ in range(cfg.dec_layers))
        self.norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(cfg.dropout)
        self.scale = math.sqrt(d)
        # embeddings are scaled by sqrt(d) on the way in and tied to the output projection: start them
        # at std d**-0.5 so both the inputs and the initial logits are O(1)
        for emb in (self.src_emb, self.word_emb):
            nn.init.normal_(emb.weight, 0.0, d ** -0.5)
            with torch.no_grad():
                emb.weight[0].zero_()
        nn.init.normal_(self.pos.weight, 0.0, 0.02)

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """src (B, S) token ids -> memory (B, S, d) and an attention mask (B, 1, 1, S), True = attend."""
        pad = src == 0
        mem = self.enc_norm(self.encoder(self.src_emb(src) * self.scale, src_key_padding_mask=pad))
        return mem, (~pad)[:, None, None, :]

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        return self.norm(h) @ self.word_emb.weight.t()  # tied output projection

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        mem, mask = self.encode(src)
        pos = torch.arange(tgt_in.shape[1], device=tgt_in.device)
        h = self.drop(self.word_emb(tgt_in) * self.scale + self.pos(pos))
        for layer in self.layers:
            h = layer(h, mem, mask)
        return self._logits(h)

    def loss(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy per target word (tgt = BOS w1 .. wn EOS PAD..)."""
        logits = self(src, tgt[:, :-1])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt[:, 1:].reshape(-1), ignore_index=0)

    def step(self, tok: torch.Tensor, t: int, mem, mask, caches: list[dict]) -> torch.Tensor:
        """One decoding step: last tokens (N,) at position t -> log-probabilities (N, V)."""
        h = self.word_emb(tok[:, None]) * self.scale + self.pos.weight[t]
        for layer, cache in zip(self.layers, caches):
            h = layer(h, mem, mask, cache=cache)
        return F.log_softmax(self._logits(h)[:, 0], -1)

    @torch.no_grad()
    def beam_search(self, src: torch.Tensor, bos: int, eos: int, banned: Sequence[int] = ()) -> list[list[int]]:
        """Batched beam search (``cfg.beam`` beams); returns the best word-id sequence per row (no BOS/EOS)."""
        cfg, B = self.cfg, src.shape[0]
        K = max(1, cfg.beam)
        mem, mask = self.encode(src)
        mem, mask = mem.repeat_interleave(K, 0), mask.repeat_interleave(K, 0)
        caches: list[dict] = [{} for _ in self.layers]
        scores = torch.full((B, K), float("-inf"))
        scores[:, 0] = 0.0
        hist = [[] for _ in range(B * K)]
        done = torch.zeros(B * K, dtype=torch.bool)
        tok = torch.full((B * K,), bos, dtype=torch.long)
        for t in range(cfg.max_len + 1):
            logp = self.step(tok, t, mem, mask, caches)
            V = logp.shape[-1]
            if banned:
                logp[:, list(banned)] = float("-inf")
            if t == cfg.max_len:  # force an end
                keep = logp[:, eos].clone()
                logp.fill_(float("-inf"))
                logp[:, eos] = keep
            if cfg.block_trigrams and t >= 2:
                for i in range(B * K):
                    h = hist[i]
                    if done[i] or len(h) < 2:
                        continue
                    a, b = h[-2], h[-1]
                    for j in range(len(h) - 2):
                        if h[j] == a and h[j + 1] == b:
                            logp[i, h[j + 2]] = float("-inf")
            logp[done] = float("-inf")
            logp[done, 0] = 0.0  # a finished beam only extends with padding, at no cost
            cand = (scores.view(B * K, 1) + logp).view(B, K * V)
            top, idx = cand.topk(K, dim=1)
            beam_src = (idx // V) + torch.arange(B)[:, None] * K
            word = idx % V
            order = beam_src.view(-1)
            for c in caches:
                for part in c.values():
                    if "k" in part and part.get("k") is not None and part["k"].shape[0] == B * K:
                        part["k"], part["v"] = part["k"][order], part["v"][order]
            prev_done = done[order]
            hist = [hist[j] + ([] if prev_done[n] else [int(word.view(-1)[n])]) for n, j in enumerate(order.tolist())]
            done = prev_done | (word.view(-1) == eos)
            scores, tok = top, word.view(-1)
            if bool(done.all()):
                break
        out = []
        for b in range(B):
            best, best_s = None, float("-inf")
            for k in range(K):
                i = b * K + k
                h = [w for w in hist[i] if w != eos]
                s = float(scores[b, k]) / (max(len(h) + 1, 1) ** cfg.length_alpha)
                if s > best_s:
                    best, best_s = h, s
            out.append(best or [])
        return out


# ------------------------------------------------------------------------------- generator

class ScratchGenerator:
    """The from-scratch decoder as a report generator.

    ``weights``: a folder written by :func:`train_scratch` (the committed seed-0 folder by default);
    pass ``weights=None`` to train in :meth:`fit` with ``config`` (seed from ``seed``). A ``seed``
    given with weights must be the seed they were trained with (so ``--seed 1`` never silently
    reports the seed-0 model).
    """

    name = "scratch"

    def __init__(self, weights: Path | str | None = DEFAULT_WEIGHTS, seed: int | None = None,
                 config: ScratchConfig | None = None) -> None:
        self.config = copy.deepcopy(config) if config is not None else ScratchConfig()
        if seed is not None and config is None:
            self.config.seed = seed
        self.model: ReportDecoder | None = None
        self.src_vocab: list[str] = source_vocab()
        self.words: list[str] = []
        self.history: dict = {}
        self._cache: dict[tuple, str] = {}
        self.command = ""  # the command line that trained it, recorded in config.yaml
        if weights is not None:
            self.load(Path(weights))
            if seed is not None and seed != self.config.seed:
                raise RadscribeInputError(
                    f"the scratch weights in {weights} were trained with seed {self.config.seed}, not {seed}; train "
                    f"that seed with `python -m radscribe.report.scratch --seed {seed} --out DIR` and pass --weights DIR")

    # -- persistence
    def load(self, folder: Path) -> None:
        """Load ``model.safetensors`` + ``vocab.json`` + ``config.yaml`` from ``folder``."""
        import yaml
        from safetensors.torch import load_file

        files = [folder / n for n in ("model.safetensors", "vocab.json", "config.yaml")]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise RadscribeInputError(f"scratch decoder weights incomplete in {folder}: missing {', '.join(missing)}; "
                                      "train them with `python -m radscribe.report.scratch --out DIR`")
        meta = yaml.safe_load(files[2].read_text())
        self.config = ScratchConfig.from_dict(meta["config"])
        vocab = json.loads(files[1].read_text())
        self.src_vocab, self.words = vocab["source"], vocab["words"]
        self.history = meta.get("training", {})
        model = ReportDecoder(self.config, len(self.src_vocab), len(self.words))
        try:
            model.load_state_dict(load_file(str(files[0])))
        except RuntimeError as exc:
            raise ConfigError(f"weights in {folder} do not match its config.yaml: {exc}") from exc
        self.model = model.eval()
        self._cache = {}

    def save(self, folder: Path, command: str | None = None) -> None:
        """Write the weights, vocabularies and config (with the command that produced them)."""
        import yaml
        from safetensors.torch import save_file

        from radscribe.io.output import atomic_file

        if self.model is None:
            raise RuntimeError("nothing to save: the scratch decoder is not trained")
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().clone() for k, v in self.model.state_dict().items()}
        tmp = folder / ".model.safetensors.tmp"
        save_file(state, str(tmp))
        tmp.replace(folder / "model.safetensors")
        with atomic_file(folder / "vocab.json") as fh:
            json.dump({"source": self.src_vocab, "words": self.words}, fh)
        meta = {"command": command or "", "config": asdict(self.config), "training": self.history}
        with atomic_file(folder / "config.yaml") as fh:
            yaml.safe_dump(meta, fh, sort_keys=False)

    # -- data
    def _encode_src(self, findings: Sequence[Finding]) -> list[int]:
        ix = {t: i for i, t in enumerate(self.src_vocab)}
        return [ix.get(t, 1) for t in finding_tokens(findings)]

    def _encode_tgt(self, cleaned: str) -> list[int]:
        ix = {w: i for i, w in enumerate(self.words)}
        ids = [ix.get(w, 3) for w in cleaned.split()][: self.config.max_len]
        return [1] + ids + [2]

    @staticmethod
    def _pad(rows: list[list[int]]) -> torch.Tensor:
        n = max(len(r) for r in rows)
        return torch.tensor([r + [0] * (n - len(r)) for r in rows], dtype=torch.long)

    @staticmethod
    def _length_batches(pairs: list, size: int, rnd: random.Random) -> list[list[int]]:
        """Shuffled batches of similar target length (less padding: about 1.6x faster on CPU)."""
        from radscribe.train.batching import length_bucketed_batches

        return length_bucketed_batches([len(p[1]) for p in pairs], size, rnd, pool_batches=20)

    # -- training
    def fit(self, train: Sequence["IUStudy"], val: Sequence["IUStudy"] | None = None,
            checkpoint: Path | None = None) -> None:
        """Train on ``train`` (oracle findings -> reference); early-stop on ``val`` loss.

        Without ``val`` a fixed-seed ``val_fraction`` of ``train`` is held out. A generator built
        from weights is already trained and ignores this call. With ``checkpoint``, the best model so
        far is saved there after every improving epoch, and a file ``STOP`` in that folder ends
        training after the current epoch (so a run can be cut short without losing it).
        """
        if self.model is not None:
            return
        if len(train) < 2:
            raise RadscribeInputError("the scratch decoder needs at least two training studies")
        threads = torch.get_num_threads()
        torch.set_num_threads(max(1, self.config.threads))
        try:
            self._fit(train, val, checkpoint)
        finally:
            torch.set_num_threads(threads)

    def _fit(self, train, val, checkpoint) -> None:
        from radscribe.data.iu_xray import clean_report_r2gen

        cfg = self.config
        torch.manual_seed(cfg.seed)
        rnd = random.Random(cfg.seed)
        if val is None:
            idx = list(range(len(train)))
            rnd.shuffle(idx)
            n_val = max(1, int(round(cfg.val_fraction * len(train))))
            val = [train[i] for i in idx[:n_val]]
            train = [train[i] for i in idx[n_val:]]
        tr_clean = [clean_report_r2gen(s.reference) for s in train]
        self.words = build_word_vocab(tr_clean, cfg.min_count)
        pairs = [(self._encode_src(s.oracle), self._encode_tgt(c)) for s, c in zip(train, tr_clean)]
        vpairs = [(self._encode_src(s.oracle), self._encode_tgt(clean_report_r2gen(s.reference))) for s in val]
        model = ReportDecoder(cfg, len(self.src_vocab), len(self.words))
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup_steps)))

        def val_loss() -> float:
            model.eval()
            tot, n = 0.0, 0
            with torch.no_grad():
                for i in range(0, len(vpairs), 64):
                    chunk = vpairs[i:i + 64]
                    src, tgt = self._pad([p[0] for p in chunk]), self._pad([p[1] for p in chunk])
                    k = int((tgt[:, 1:] != 0).sum())
                    tot += float(model.loss(src, tgt)) * k
                    n += k
            model.train()
            return tot / max(n, 1)

        from tqdm import tqdm

        t0 = time.perf_counter()
        best, best_state, bad, curve = float("inf"), None, 0, []
        model.train()
        for epoch in range(cfg.max_epochs):
            batches = self._length_batches(pairs, cfg.batch_size, rnd)
            tot, nb = 0.0, 0
            bar = tqdm(batches, desc=f"scratch epoch {epoch + 1}", unit="batch",
                       leave=False, file=sys.stderr, disable=len(pairs) < 200)
            for batch in bar:
                chunk = [pairs[j] for j in batch]
                loss = model.loss(self._pad([p[0] for p in chunk]), self._pad([p[1] for p in chunk]))
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
                tot += loss.item()
                nb += 1
            vl = val_loss()
            curve.append({"epoch": epoch + 1, "train_loss": round(tot / max(nb, 1), 4), "val_loss": round(vl, 4),
                          "elapsed_s": round(time.perf_counter() - t0, 1)})
            print(f"scratch seed {cfg.seed} epoch {epoch + 1}: train {tot / max(nb, 1):.4f} val {vl:.4f} "
                  f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
            if vl < best - 1e-4:
                best, bad = vl, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                if checkpoint is not None:
                    self._finish(model, best_state, curve, best, len(pairs), len(vpairs), t0, "checkpoint")
                    self.save(checkpoint, command=self.command)
            else:
                bad += 1
            stop = checkpoint is not None and (checkpoint / "STOP").exists()
            if bad >= cfg.patience or time.perf_counter() - t0 > cfg.time_limit_s or stop:
                why = "patience" if bad >= cfg.patience else "STOP file" if stop else "time limit"
                break
        else:
            why = "max_epochs"
        self._finish(model, best_state, curve, best, len(pairs), len(vpairs), t0, why)

    def _finish(self, model, state, curve, best, n_train, n_val, t0, why) -> None:
        model.load_state_dict(state)
        self.model = copy.deepcopy(model).eval()
        model.train()
        self.history = {"curve": list(curve), "best_val_loss": round(best, 4), "stopped_by": why,
                        "n_train": n_train, "n_val": n_val, "vocab_size": len(self.words),
                        "train_wall_s": round(time.perf_counter() - t0, 1),
                        "train_cpu_s": round(time.process_time(), 1),
                        "n_params": sum(p.numel() for p in model.parameters())}
        self._cache = {}

    # -- generation
    def generate_many(self, batch: Sequence[Sequence[Finding]]) -> list[str]:
        """Reports for several finding lists at once (one batched beam search for the unseen ones)."""
        if self.model is None:
            raise RuntimeError("ScratchGenerator.generate called before fit or load")
        keys = [tuple(self._encode_src(f)) for f in batch]
        todo = list(dict.fromkeys(k for k in keys if k not in self._cache))
        banned = [0, 1, 3]  # pad, bos, unk
        threads = torch.get_num_threads()
        # small step-by-step decoding gains nothing from a second thread and loses a lot on a busy machine
        torch.set_num_threads(max(1, self.config.threads))
        try:
            for i in range(0, len(todo), 32):
                chunk = todo[i:i + 32]
                seqs = self.model.beam_search(self._pad([list(k) for k in chunk]), bos=1, eos=2, banned=banned)
                for k, s in zip(chunk, seqs):
                    self._cache[k] = detokenize([self.words[w] for w in s])
        finally:
            torch.set_num_threads(threads)
        return [self._cache[k] for k in keys]

    def generate(self, findings: Sequence[Finding], indication: str | None = None) -> str:
        return self.generate_many([findings])[0]


# --------------------------------------------------------------------------- training entry

def train_scratch(argv: list[str] | None = None) -> int:
    """``python -m radscribe.report.scratch --seed S --out DIR``: train on IU X-ray train, early-stop on val."""
    from radscribe.data.iu_xray import load_iu
    from radscribe.data.paths import shared_data_dir

    iu = shared_data_dir() / "iu_xray_reports"
    p = argparse.ArgumentParser(prog="python -m radscribe.report.scratch", description=train_scratch.__doc__)
    p.add_argument("--annotation", type=Path, default=iu / "r2gen_split_annotation.json")
    p.add_argument("--reports", type=Path, default=iu / "indiana_reports.csv")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a ScratchConfig field")
    a = p.parse_args(argv)
    cfg = ScratchConfig(seed=a.seed, threads=a.threads)
    for kv in a.set:
        k, _, v = kv.partition("=")
        if k not in {f.name for f in fields(cfg)}:
            raise ConfigError(f"unknown scratch config key {k!r}")
        setattr(cfg, k, type(getattr(cfg, k))(v) if not isinstance(getattr(cfg, k), bool) else v.lower() == "true")
    splits = load_iu(a.annotation, a.reports)
    gen = ScratchGenerator(weights=None, config=cfg)
    cmd = "python -m radscribe.report.scratch " + " ".join(shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:]))
    gen.command = cmd
    gen.fit(splits["train"], val=splits["val"], checkpoint=a.out)
    gen.save(a.out, command=cmd)
    print(f"saved {a.out} (best val loss {gen.history['best_val_loss']}, {gen.history['train_wall_s']} s)",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(train_scratch())
    except RadscribeInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
