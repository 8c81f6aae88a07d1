"""ServerGenerator against a real llama.cpp server (SmolLM2) and against misbehaving loopback servers."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from radscribe.errors import RadscribeInputError
from radscribe.findings.model import Finding
from radscribe.knowledge.labeler import label_report
from radscribe.report.llm_server import (
    ServerGenerator,
    clean_answer,
    drop_unfinished,
    garbage_reason,
    normalise_url,
)
from tests.report.conftest import free_port

CARDIO = [Finding(kind="cardiomegaly", detector="t", confidence=1.0, attributes={"severity": "mild"})]
EFFUSION = [Finding(kind="effusion", detector="t", confidence=1.0, side="left")]


def test_real_llama_cpp_round_trip(llama_server):
    gen = ServerGenerator(base_url=llama_server, model="smollm2", timeout_s=60, retries=0, max_tokens=96)
    assert "smollm2" in gen.list_models()
    out = gen.generate_detailed(CARDIO)
    assert out.path == "server", out.reason
    assert out.attempts == 1 and out.reason is None
    assert garbage_reason(out.text) is None
    assert out.text != gen._fallback_text(CARDIO)  # written by the model, not the fallback
    assert gen.counts == {"server": 1, "fallback": 0, "repeated": 0}


def test_closed_port_falls_back_fast_and_says_so():
    port = free_port()  # nothing listens there
    gen = ServerGenerator(base_url=f"http://127.0.0.1:{port}", timeout_s=5, retries=2, backoff_s=0.05)
    t = time.perf_counter()
    out = gen.generate_detailed(EFFUSION)
    assert time.perf_counter() - t < 5  # well within one timeout: refused connections are not waited on
    assert out.path == "fallback" and out.attempts == 3
    assert "cannot reach" in out.reason and "structured writer used" in out.reason
    lab = label_report(out.text)  # the structured writer's text states the finding
    assert lab["effusion"].status == "positive" and lab["effusion"].side == "left", out.text
    assert gen.last is out and gen.counts["fallback"] == 1


def test_slow_server_times_out_then_falls_back(fake_server):
    srv = fake_server(delay_s=3.0)
    gen = ServerGenerator(base_url=srv.url, timeout_s=0.5, retries=1, backoff_s=0.0)
    t = time.perf_counter()
    out = gen.generate_detailed(CARDIO)
    elapsed = time.perf_counter() - t
    assert out.path == "fallback" and "no answer within 0.5 s" in out.reason
    assert srv.hits == 2 and out.attempts == 2
    assert 1.0 <= elapsed < 2.5  # two 0.5 s timeouts, not the server's 3 s


@pytest.mark.parametrize("retries", [0, 3])
def test_retry_count_is_honoured_on_503(fake_server, retries):
    srv = fake_server(status=503)
    out = ServerGenerator(base_url=srv.url, timeout_s=2, retries=retries, backoff_s=0.01).generate_detailed(CARDIO)
    assert srv.hits == retries + 1 == out.attempts
    assert out.path == "fallback" and "HTTP 503" in out.reason


def test_client_error_is_not_retried(fake_server):
    srv = fake_server(status=400)
    out = ServerGenerator(base_url=srv.url, timeout_s=2, retries=3, backoff_s=0.01).generate_detailed(CARDIO)
    assert srv.hits == 1 and out.path == "fallback" and "HTTP 400" in out.reason


def test_garbage_answer_falls_back(fake_server):
    srv = fake_server(content="report report report report report report report report report report report report")
    out = ServerGenerator(base_url=srv.url, timeout_s=2, retries=2).generate_detailed(CARDIO)
    assert out.path == "fallback" and "repetitive" in out.reason and srv.hits == 1


def test_good_answer_is_cleaned_and_request_is_openai_shaped(fake_server):
    srv = fake_server(content="**Findings:** The heart is mildly enlarged.\n\nImpression:\n1. Mild cardiomegaly.")
    gen = ServerGenerator(base_url=srv.url, model="my-model", api_key="sk-test", timeout_s=2)
    out = gen.generate_detailed(CARDIO)
    assert out.path == "server" and out.text == "The heart is mildly enlarged. Mild cardiomegaly."
    assert srv.last_headers.get("Authorization") == "Bearer sk-test"
    body = srv.last_body
    assert body["model"] == "my-model" and body["temperature"] == 0.0
    assert body["messages"][0]["role"] == "system" and body["messages"][-1]["role"] == "user"
    assert "cardiomegaly" in body["messages"][-1]["content"]


@pytest.mark.parametrize("finish, expected", [
    ("length", "The heart is mildly enlarged. There is no pleural effusion."),
    ("stop", "The heart is mildly enlarged. There is no pleural effusion. No other"),
    (None, "The heart is mildly enlarged. There is no pleural effusion. No other"),
])
def test_an_answer_cut_at_max_tokens_loses_its_unfinished_sentence(fake_server, finish, expected):
    srv = fake_server(content="The heart is mildly enlarged. There is no pleural effusion. No other", finish_reason=finish)
    out = ServerGenerator(base_url=srv.url, timeout_s=2).generate_detailed(CARDIO)
    assert out.path == "server" and out.text == expected  # only a cut answer ("length") is trimmed


def test_identical_prompts_are_asked_once_at_temperature_zero(fake_server):
    srv = fake_server(content="The heart is mildly enlarged.")
    gen = ServerGenerator(base_url=srv.url, timeout_s=2)
    texts = [gen.generate(CARDIO) for _ in range(3)] + [gen.generate(EFFUSION)]
    assert srv.hits == 2 and texts[0] == texts[1] == texts[2]
    assert gen.counts == {"server": 2, "fallback": 0, "repeated": 2}
    hot = ServerGenerator(base_url=srv.url, timeout_s=2, temperature=0.7)  # sampling: every call goes out
    hot.generate(CARDIO), hot.generate(CARDIO)
    assert srv.hits == 4


def test_a_fallback_is_not_remembered(fake_server):
    srv = fake_server(status=503)
    gen = ServerGenerator(base_url=srv.url, timeout_s=2, retries=0)
    gen.generate(CARDIO), gen.generate(CARDIO)
    assert srv.hits == 2 and gen.counts["fallback"] == 2


def test_environment_configuration(monkeypatch):
    monkeypatch.setenv("RADSCRIBE_LLM_URL", "http://10.0.0.5:11434/")
    monkeypatch.setenv("RADSCRIBE_LLM_MODEL", "llama3.2")
    monkeypatch.setenv("RADSCRIBE_LLM_API_KEY", "k")
    gen = ServerGenerator()
    assert (gen.base_url, gen.model, gen.api_key) == ("http://10.0.0.5:11434/v1", "llama3.2", "k")
    assert normalise_url("https://h/openai/v1/") == "https://h/openai/v1"
    with pytest.raises(RadscribeInputError, match="not an http"):
        ServerGenerator(base_url="localhost:8080")


def test_few_shot_examples_are_the_closest_training_reports():
    def study(kind, text, side=None):
        f = () if kind is None else (Finding(kind=kind, detector="mesh-oracle", confidence=1.0, side=side),)
        return SimpleNamespace(oracle=f, reference=text)

    gen = ServerGenerator(base_url="http://127.0.0.1:9", few_shot=2)
    gen.fit([study(None, "Normal chest."), study("effusion", "Left effusion.", "left"),
             study("effusion", "Right effusion.", "right"), study("cardiomegaly", "Big heart.")])
    msgs = gen.messages(EFFUSION)
    shots = [m["content"] for m in msgs if m["role"] == "assistant"]
    assert shots == ["Right effusion.", "Left effusion."]  # same side last, next to the question
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]


def test_clean_answer_and_garbage_rules():
    assert clean_answer("<|im_start|>assistant\n## Report\n- Lungs clear.\n- No effusion.") == "Lungs clear. No effusion."
    assert drop_unfinished("Heart normal. Lungs clear. No pleural") == "Heart normal. Lungs clear."
    assert drop_unfinished("Heart normal. Lungs clear.") == "Heart normal. Lungs clear."
    assert drop_unfinished("Heart size 1.5 cm larger than") == "Heart size 1.5 cm larger than"  # no sentence ends
    assert garbage_reason("ok") is not None
    assert garbage_reason("1234 5678 9012 3456 7890 !!!! ????") == "answer is mostly not words"
    assert garbage_reason("As an AI language model I cannot read images of the chest.") is not None
    assert garbage_reason("The heart is normal in size. The lungs are clear.") is None
