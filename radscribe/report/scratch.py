"""A from-scratch transformer that writes an IU X-ray style report from a finding list.

The R2Gen-style baseline without images: an encoder over the finding tokens of
:func:`radscribe.report.prompting.finding_tokens` and a pre-LN transformer decoder (3 layers,
d=256 by default) over a word-level vocabulary built from the R2Gen-cleaned training reports with
minimum count 3, as R2Gen does. Trained with teacher forcing and cross-entropy, early stopping on
the validation loss; decoding is batched beam search (beam 3, repeated-trigram blocking as in
R2Gen) with cached keys/values, so a report costs one decoder step per word.

Training lives in :mod:`radscribe.train.scratch` (2 CPU cores, about 10 minutes)::

    radscribe train-scratch --seed 0 --out radscribe/report/weights/scratch

which writes ``model.safetensors``, ``vocab.json`` and ``config.yaml`` (config, exact command,
training curve, wall time). :class:`ScratchGenerator` loads that folder (the committed seed-0 weights
by default).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file
from torch import nn

from radscribe.data.iu_xray import IUStudy
from radscribe.errors import ConfigError, RadscribeInputError
from radscribe.findings.model import Finding
from radscribe.knowledge.ontology import ANATOMY, ATTRIBUTES, FINDING_KINDS, SIDES
from radscribe.report.placeholders import banned_word_ids
from radscribe.report.prompting import NORMAL_TOKEN, SEP_TOKEN, finding_tokens

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
    #: de-identification placeholders in the training targets: keep | drop | repair
    #: (:func:`radscribe.data.iu_xray.clean_placeholders`); weights saved without the key were trained with "keep"
    placeholders: str = "repair"

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


def encode_findings(findings: Sequence[Finding], src_vocab: Sequence[str]) -> list[int]:
    """Source token ids of a finding list (tokens outside ``src_vocab`` -> ``<unk>``)."""
    ix = {t: i for i, t in enumerate(src_vocab)}
    return [ix.get(t, 1) for t in finding_tokens(findings)]


def pad_rows(rows: list[list[int]]) -> torch.Tensor:
    """Token id rows right-padded with ``<pad>`` (id 0) into one (n, max_len) tensor."""
    n = max(len(r) for r in rows)
    return torch.tensor([r + [0] * (n - len(r)) for r in rows], dtype=torch.long)


# ------------------------------------------------------------------------------- generator

class ScratchGenerator:
    """The from-scratch decoder as a report generator.

    ``weights``: a folder written by :func:`radscribe.train.scratch.save_generator` (the committed
    seed-0 folder by default). A ``seed`` given with weights must be the seed they were trained with
    (so ``--seed 1`` never silently reports the seed-0 model). :func:`radscribe.train.scratch.train_decoder`
    builds one from a freshly trained model with :meth:`trained`.
    """

    name = "scratch"

    def __init__(self, weights: Path | str | None = DEFAULT_WEIGHTS, seed: int | None = None) -> None:
        self.config = ScratchConfig()
        self.model: ReportDecoder | None = None
        self.src_vocab: list[str] = source_vocab()
        self.words: list[str] = []
        self.history: dict = {}
        self._cache: dict[tuple, str] = {}
        if weights is not None:  # None: an empty shell that :meth:`trained` fills
            self.load(Path(weights))
            if seed is not None and seed != self.config.seed:
                raise RadscribeInputError(
                    f"the scratch weights in {weights} were trained with seed {self.config.seed}, not {seed}; train "
                    f"that seed with `radscribe train-scratch --seed {seed} --out DIR` and pass --weights DIR")

    @classmethod
    def trained(cls, model: "ReportDecoder", config: ScratchConfig, words: list[str], history: dict) -> "ScratchGenerator":
        """A generator around a model trained in this process (vocabulary ``words``, curve in ``history``)."""
        g = cls(weights=None)
        g.config, g.words, g.history = config, list(words), dict(history)
        g.model = model.eval()
        return g

    def fit(self, train: Sequence[IUStudy] = ()) -> None:
        """Nothing to learn here: the weights are trained by ``radscribe train-scratch``."""
        return None

    # -- persistence
    def load(self, folder: Path) -> None:
        """Load ``model.safetensors`` + ``vocab.json`` + ``config.yaml`` from ``folder``."""
        files = [folder / n for n in ("model.safetensors", "vocab.json", "config.yaml")]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise RadscribeInputError(f"scratch decoder weights incomplete in {folder}: missing {', '.join(missing)}; "
                                      "train them with `radscribe train-scratch --out DIR`")
        meta = yaml.safe_load(files[2].read_text())
        self.config = ScratchConfig.from_dict({"placeholders": "keep", **meta["config"]})
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

    # -- generation
    def generate_many(self, batch: Sequence[Sequence[Finding]]) -> list[str]:
        """Reports for several finding lists at once (one batched beam search for the unseen ones)."""
        if self.model is None:
            raise RuntimeError("ScratchGenerator.generate called before fit or load")
        keys = [tuple(encode_findings(f, self.src_vocab)) for f in batch]
        todo = list(dict.fromkeys(k for k in keys if k not in self._cache))
        banned = sorted({0, 1, 3, *banned_word_ids(self.words)})  # pad, bos, unk and placeholder words ("xxxx")
        threads = torch.get_num_threads()
        # small step-by-step decoding gains nothing from a second thread and loses a lot on a busy machine
        torch.set_num_threads(max(1, self.config.threads))
        try:
            for i in range(0, len(todo), 32):
                chunk = todo[i:i + 32]
                seqs = self.model.beam_search(pad_rows([list(k) for k in chunk]), bos=1, eos=2, banned=banned)
                for k, s in zip(chunk, seqs):
                    self._cache[k] = detokenize([self.words[w] for w in s])
        finally:
            torch.set_num_threads(threads)
        return [self._cache[k] for k in keys]

    def generate(self, findings: Sequence[Finding], indication: str | None = None) -> str:
        return self.generate_many([findings])[0]
