"""The generator registry, the structured generator, the prompt serialisation and generate-reports."""

from __future__ import annotations

import json

import pytest

from radscribe.cli import main
from radscribe.errors import RadscribeInputError
from radscribe.findings.model import Finding
from radscribe.report.generate import GENERATORS, ReportGenerator, make_generator
from radscribe.report.prompting import finding_features, finding_tokens, findings_prompt
from tests.report._synth import corpus, oracle


def test_registry_has_the_fixed_names_and_rejects_unknown_ones():
    assert set(GENERATORS) == {"structured", "most-common", "retrieval", "scratch", "llm-lora", "llm-server"}
    with pytest.raises(RadscribeInputError, match="known: structured"):
        make_generator("gpt-99")
    for name in ("structured", "most-common", "retrieval"):
        assert isinstance(make_generator(name), ReportGenerator)


def test_structured_generator_mentions_each_finding_with_its_side_and_is_deterministic():
    g = make_generator("structured")
    g.fit(corpus())
    fs = [oracle("effusion", "left", "mild"), oracle("cardiomegaly")]
    text = g.generate(fs, indication="Shortness of breath.")
    assert "left" in text and "pleural effusion" in text.lower() and "cardiomegaly" in text.lower()
    assert "\n" not in text and "1." not in text  # impression lines flattened into sentences
    assert text == g.generate(list(reversed(fs)))
    normal = g.generate([])
    assert "No pleural effusion or pneumothorax." in normal and "No acute cardiopulmonary abnormality." in normal
    assert "No pleural effusion" not in text  # a present effusion is not negated by the normal statements


def test_prompt_serialisation_is_order_independent_and_complete():
    fs = [oracle("opacity", "left", "mild"), oracle("cardiomegaly"),
          Finding("pneumothorax", "cxr-model", 0.95, present=False)]
    toks = finding_tokens(fs)
    assert toks == finding_tokens(list(reversed(fs)))
    assert toks == ["cardiomegaly", ";", "opacity", "side:left", "seve:mild", ";", "no:pneumothorax"]
    assert finding_tokens([]) == ["normal"]
    assert finding_features([]) == {"normal": 1.0}
    assert finding_features(fs)["opacity|side:left"] == 0.5 and "pneumothorax" not in finding_features(fs)
    p = findings_prompt(fs, "Cough.")
    assert p.splitlines() == ["Indication: Cough.", "Findings: cardiomegaly; mild left opacity.",
                              "Absent: pneumothorax."]
    nod = Finding("nodule", "lung-nodule-classic", 0.8, long_axis=7.0, short_axis=5.0, side="right",
                  location="right_upper_lobe")
    assert "size:6_to_8mm" in finding_tokens([nod])
    assert findings_prompt([nod]) == "Findings: right upper lobe nodule (7 mm)."


def test_cli_unknown_generator_is_an_error_line_and_exit_2(tmp_path, capsys):
    rc = main(["generate-reports", "--generator", "nope", "--out", str(tmp_path / "x.jsonl")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: unknown report generator 'nope'")
    assert not (tmp_path / "x.jsonl").exists()


def test_cli_missing_annotation_file_is_an_error(tmp_path, capsys):
    rc = main(["generate-reports", "--generator", "most-common", "--annotation", str(tmp_path / "none.json"),
               "--out", str(tmp_path / "x.jsonl")])
    assert rc == 2 and "--annotation file" in capsys.readouterr().err


@pytest.mark.parametrize("name,mode", [("retrieval", "oracle"), ("structured", "indication")])
def test_cli_generate_reports_end_to_end_on_iu_xray(shared_dataset, tmp_path, capsys, name, mode):
    d = shared_dataset("iu_xray_reports")
    out = tmp_path / f"{name}.jsonl"
    rc = main(["generate-reports", "--generator", name, "--findings", mode, "--split", "test", "--limit", "6",
               "--annotation", str(d / "r2gen_split_annotation.json"), "--reports", str(d / "indiana_reports.csv"),
               "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    ann = json.loads((d / "r2gen_split_annotation.json").read_text())
    assert [r["id"] for r in rows] == [a["id"] for a in ann["test"][:6]]
    for r in rows:
        assert r["generated"].strip() and r["reference"].strip()
        assert isinstance(r["n_corrections"], int) and r["n_corrections"] == r["n_dropped"] + r["n_added"]
    assert "6 reports" in capsys.readouterr().err


def test_cli_llm_server_rows_say_who_answered_and_why(shared_dataset, tmp_path, capsys, monkeypatch):
    from tests.report.conftest import free_port

    d = shared_dataset("iu_xray_reports")
    monkeypatch.setenv("RADSCRIBE_LLM_URL", f"http://127.0.0.1:{free_port()}/v1")  # nothing listens there
    out = tmp_path / "server.jsonl"
    rc = main(["generate-reports", "--generator", "llm-server", "--findings", "oracle", "--split", "test",
               "--limit", "3", "--annotation", str(d / "r2gen_split_annotation.json"),
               "--reports", str(d / "indiana_reports.csv"), "--out", str(out)])
    assert rc == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["source"] for r in rows] == ["fallback"] * 3
    assert all("cannot reach" in r["source_reason"] for r in rows)
    assert "'fallback': 3" in capsys.readouterr().err
