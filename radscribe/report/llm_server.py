"""Report writing through any OpenAI-compatible chat server (vLLM, Ollama, llama.cpp server).

The findings go to the server as a strict prompt (a system rule, plus few-shot examples: the
training reports whose findings are closest, when :meth:`ServerGenerator.fit` was given training
studies, else two built-in examples). The server's answer is checked; when the server is down,
slower than the timeout after the allowed retries, or answers with something that is not a
report, the deterministic structured writer (:func:`radscribe.report.structured.write_structured`)
writes the report instead. :attr:`ServerGenerator.last` records which path was taken and why.

Configuration: arguments, else the environment variables ``RADSCRIBE_LLM_URL`` (e.g.
``http://127.0.0.1:8080/v1``), ``RADSCRIBE_LLM_MODEL`` and ``RADSCRIBE_LLM_API_KEY``.
See docs/llm-server.md.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any, Sequence
from urllib.parse import urlparse

from radscribe.errors import RadscribeInputError
from radscribe.findings.model import Finding
from radscribe.report.placeholders import strip_placeholders
from radscribe.report.prompting import finding_features, findings_prompt
from radscribe.report.structured import write_structured

DEFAULT_URL = "http://127.0.0.1:8080/v1"
DEFAULT_MODEL = "smollm2"

SYSTEM_PROMPT = (
    "You are a radiologist writing a chest X-ray report. Use ONLY the findings given; do not add, "
    "remove or change any finding, side or severity. When the findings are 'none', write a normal "
    "report. Write plain sentences (findings, then impression), no headings, no lists, under 90 words."
)

# Used when fit() was not given training studies (e.g. `radscribe analyze --writer llm-server`).
BUILTIN_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("Findings: none (normal study).",
     "The heart is normal in size. The mediastinum is unremarkable. The lungs are clear. "
     "No pleural effusion or pneumothorax. No acute cardiopulmonary abnormality."),
    ("Findings: mild cardiomegaly; left lower zone opacity.",
     "The heart is mildly enlarged. There is an opacity in the left lower zone. No pleural effusion "
     "or pneumothorax. Mild cardiomegaly. Left basilar opacity."),
)


@dataclass(frozen=True)
class ServerOutcome:
    """What one ``generate`` call did: ``path`` is ``"server"`` or ``"fallback"``."""

    text: str
    path: str
    reason: str | None
    attempts: int
    elapsed_s: float
    model: str


class ServerError(Exception):
    """One failed request; ``retry`` says whether trying again can help."""

    def __init__(self, msg: str, retry: bool):
        super().__init__(msg)
        self.retry = retry


def normalise_url(url: str) -> str:
    """``http://host:port`` -> ``http://host:port/v1``; a URL with a path is kept (trailing / removed)."""
    url = url.strip().rstrip("/")
    u = urlparse(url)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise RadscribeInputError(f"LLM server URL {url!r} is not an http(s) URL, e.g. http://127.0.0.1:8080/v1")
    return url if u.path not in ("", "/") else url + "/v1"


def clean_answer(text: str) -> str:
    """Strip headings, list marks, markdown and special tokens; one paragraph."""
    text = re.sub(r"<\|im_start\|>\s*(?:system|user|assistant)?", " ", text)
    text = re.sub(r"<\|[^|>]*\|>", " ", text)
    text = re.sub(r"(?im)^\s*(#+\s*)?(findings|impression|report)\s*:?\s*$", " ", text)
    text = re.sub(r"(?i)\b(findings|impression)\s*:\s*", "", text)
    text = re.sub(r"(?m)^\s*(?:[-*]|\d+[.)])\s+", "", text)
    text = text.replace("**", "").replace("__", "")
    return re.sub(r"\s+", " ", text).strip()


def drop_unfinished(text: str) -> str:
    """An answer cut at ``max_tokens`` loses its unfinished last sentence ("Heart normal. No pleural"
    -> "Heart normal."): the fragment says half a thing, and next to a sentence the guard adds it would
    read as a negation of it. An answer with no finished sentence is returned as it is (the garbage
    rules judge it)."""
    text = text.rstrip()
    if not text or text.endswith((".", "!", "?")):
        return text
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s)", text)]
    return text[:ends[-1]] if ends else text


def garbage_reason(text: str) -> str | None:
    """Why an answer is not usable as a report, or None when it looks like one."""
    if len(text) < 20:
        return f"answer too short ({len(text)} characters)"
    if len(text) > 2000:
        return f"answer too long ({len(text)} characters)"
    letters = sum(c.isalpha() for c in text)
    if letters / len(text) < 0.6:
        return "answer is mostly not words"
    sents = [s.strip().lower() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
    if sents and max(sents.count(s) for s in sents) >= 3:
        return "answer repeats the same sentence"
    words = re.findall(r"[a-z]+", text.lower())
    if len(words) >= 12 and len(set(words)) / len(words) < 0.25:
        return "answer is repetitive"
    if re.search(r"(?i)\b(as an ai|i cannot|i'm sorry|language model)\b", text):
        return "answer is a refusal or chatter, not a report"
    return None


class ServerGenerator:
    """ReportGenerator backed by an OpenAI-compatible ``/chat/completions`` endpoint.

    ``timeout_s`` bounds each request (seconds); a refused connection, a timeout, HTTP 429 or 5xx
    is retried up to ``retries`` times with exponential backoff (``backoff_s``, doubled each time);
    then, or at once for any other failure or a garbage answer, the structured writer answers.
    ``assume_complete`` is passed to that writer: True only when the findings cover every chest
    system (an oracle list), else the fallback would imply normality nobody checked.
    """

    name = "llm-server"

    def __init__(self, base_url: str | None = None, model: str | None = None, api_key: str | None = None, *,
                 timeout_s: float = 30.0, retries: int = 2, backoff_s: float = 0.5, few_shot: int = 2,
                 max_tokens: int = 200, temperature: float = 0.0, use_indication: bool = False,
                 assume_complete: bool = False, region: str = "chest", modality: str | None = "CR",
                 seed: int = 0) -> None:
        self.base_url = normalise_url(base_url or os.environ.get("RADSCRIBE_LLM_URL") or DEFAULT_URL)
        self.model = model or os.environ.get("RADSCRIBE_LLM_MODEL") or DEFAULT_MODEL
        self.api_key = api_key if api_key is not None else os.environ.get("RADSCRIBE_LLM_API_KEY")
        if timeout_s <= 0 or retries < 0 or backoff_s < 0:
            raise RadscribeInputError("timeout_s must be > 0, retries and backoff_s >= 0")
        self.timeout_s, self.retries, self.backoff_s = float(timeout_s), int(retries), float(backoff_s)
        self.few_shot, self.max_tokens, self.temperature = int(few_shot), int(max_tokens), float(temperature)
        self.use_indication, self.assume_complete = use_indication, assume_complete
        self.region, self.modality, self.seed = region, modality, seed
        self._examples: list[tuple[dict[str, float], str, str]] = []  # (features, prompt, report)
        self.last: ServerOutcome | None = None
        self.counts = {"server": 0, "fallback": 0, "repeated": 0}
        self._client = None
        self._answers: dict[str, str] = {}  # temperature 0: the same messages get the same answer

    # ------------------------------------------------------------------ training examples
    def fit(self, train: Sequence[Any] = ()) -> None:
        """Keep (findings, reference) of the training studies to pick few-shot examples from."""
        self._examples = [(finding_features(s.oracle), findings_prompt(s.oracle), s.reference)
                          for s in train if getattr(s, "reference", "")]

    def _shots(self, findings: Sequence[Finding]) -> list[tuple[str, str]]:
        if self.few_shot <= 0:
            return []
        if not self._examples:
            return list(BUILTIN_EXAMPLES[: self.few_shot])

        q = finding_features(findings)

        def score(feats: dict[str, float]) -> float:
            keys = set(q) | set(feats)
            inter = sum(min(q.get(k, 0), feats.get(k, 0)) for k in keys)
            union = sum(max(q.get(k, 0), feats.get(k, 0)) for k in keys)
            return inter / union if union else 0.0

        ranked = sorted(range(len(self._examples)), key=lambda i: (-score(self._examples[i][0]), i))
        out, seen = [], set()
        for i in ranked:
            _, p, r = self._examples[i]
            if r not in seen:
                out.append((p, r))
                seen.add(r)
            if len(out) == self.few_shot:
                break
        return out[::-1]  # the closest example last, next to the question

    def messages(self, findings: Sequence[Finding], indication: str | None = None) -> list[dict[str, str]]:
        """The chat messages sent for these findings (system rule, few-shot turns, the question)."""
        msgs = [{"role": "system", "content": SYSTEM_PROMPT}]
        for p, r in self._shots(findings):
            msgs += [{"role": "user", "content": p}, {"role": "assistant", "content": r}]
        msgs.append({"role": "user", "content": findings_prompt(findings, indication if self.use_indication else None)})
        return msgs

    # ------------------------------------------------------------------ HTTP
    def _http(self):
        import httpx

        if self._client is None:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._client = httpx.Client(timeout=httpx.Timeout(self.timeout_s), headers=headers)
        return self._client

    def _request(self, messages: list[dict[str, str]]) -> tuple[str, str | None]:
        """The answer's text and its ``finish_reason`` ("stop", "length", or None when not given)."""
        import httpx

        body = {"model": self.model, "messages": messages, "temperature": self.temperature,
                "max_tokens": self.max_tokens, "seed": self.seed, "stream": False}
        try:
            r = self._http().post(f"{self.base_url}/chat/completions", json=body)
        except httpx.TimeoutException:
            raise ServerError(f"no answer within {self.timeout_s:g} s", retry=True) from None
        except httpx.TransportError as exc:
            raise ServerError(f"cannot reach {self.base_url}: {type(exc).__name__}", retry=True) from None
        if r.status_code == 429 or r.status_code >= 500:
            raise ServerError(f"HTTP {r.status_code} from the server", retry=True)
        if r.status_code != 200:
            raise ServerError(f"HTTP {r.status_code} from the server: {r.text[:200]}", retry=False)
        try:
            choice = r.json()["choices"][0]
            content = choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise ServerError("answer is not an OpenAI chat completion", retry=False) from None
        if not isinstance(content, str):
            raise ServerError("answer has no text content", retry=False)
        return content, choice.get("finish_reason")

    def list_models(self) -> list[str]:
        """Model ids the server offers (``GET /models``); RadscribeInputError when unreachable."""
        import httpx

        try:
            r = self._http().get(f"{self.base_url}/models")
            r.raise_for_status()
            return [m["id"] for m in r.json().get("data", [])]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise RadscribeInputError(f"LLM server at {self.base_url} did not list its models: {exc}") from exc

    # ------------------------------------------------------------------ generation
    def _fallback_text(self, findings: Sequence[Finding]) -> str:
        rep = write_structured(findings, region=self.region, modality=self.modality,
                               assume_complete=self.assume_complete)
        imp = [re.sub(r"^\d+\.\s+", "", line.strip()) for line in rep.impression.splitlines()]
        return " ".join(s.strip() for s in [rep.findings, *imp] if s and s.strip())

    def generate_detailed(self, findings: Sequence[Finding], indication: str | None = None) -> ServerOutcome:
        """The report and how it was made (server or fallback, attempts, reason, seconds)."""
        t0 = time.perf_counter()
        msgs = self.messages(findings, indication)
        key = json.dumps(msgs, sort_keys=True) if self.temperature == 0 else None
        if key is not None and key in self._answers:  # deterministic decoding: ask once per distinct prompt
            out = ServerOutcome(self._answers[key], "server", None, 0, time.perf_counter() - t0, self.model)
            self.counts["repeated"] += 1
            self.last = out
            return out
        reason, attempts, text = None, 0, ""
        for attempt in range(self.retries + 1):
            attempts = attempt + 1
            try:
                content, finish = self._request(msgs)
                text = clean_answer(content)
                if finish == "length":  # cut at max_tokens
                    text = drop_unfinished(text)
                text = strip_placeholders(text)  # a few-shot "XXXX" copied by the model
            except ServerError as exc:
                reason = str(exc)
                if not exc.retry or attempt == self.retries:
                    break
                time.sleep(self.backoff_s * (2 ** attempt))
                continue
            reason = garbage_reason(text)  # a deterministic answer would come back the same: no retry
            break
        if reason is None:
            out = ServerOutcome(text, "server", None, attempts, time.perf_counter() - t0, self.model)
            if key is not None:
                self._answers[key] = text
        else:
            out = ServerOutcome(self._fallback_text(findings), "fallback",
                                f"structured writer used: {reason} (after {attempts} attempt(s))",
                                attempts, time.perf_counter() - t0, self.model)
        self.counts[out.path] += 1
        self.last = out
        return out

    def generate(self, findings: Sequence[Finding], indication: str | None = None) -> str:
        """Report text; see :attr:`last` for whether the server or the fallback wrote it."""
        return self.generate_detailed(findings, indication).text

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
