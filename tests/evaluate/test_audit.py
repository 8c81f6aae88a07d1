"""The second reader (radscribe/evaluate/audit.py): issue 19's examples, negatives that must pass, the CLI."""

from __future__ import annotations

import json

import pytest

from radscribe.cli import main
from radscribe.evaluate.audit import audit_report, read_rows, summarise
from radscribe.findings.model import Finding


def F(kind, side=None, **attrs):
    return Finding(kind=kind, detector="test", confidence=1.0, side=side, attributes=attrs)


def types(text, findings=()):
    return [p.type for p in audit_report("x", text, list(findings)).problems]


# --- issue 19's examples ----------------------------------------------------------------------------

def test_placeholder_in_a_generated_sentence():
    a = audit_report("x", "There is scarring in the right hilar lymph XXXX.", [F("atelectasis", "right")])
    assert [p.type for p in a.problems] == ["placeholder"]
    assert a.problems[0].sentences == ("There is scarring in the right hilar lymph XXXX.",)
    # other forms: inside a hyphenated word, lower-cased (R2Gen-cleaned text), MIMIC's ___
    assert types("Normal chest x-XXXX.") == ["placeholder"]
    assert types("normal chest x-xxxx .") == ["placeholder"]
    assert types("The patient is a ___ year old.") == ["placeholder"]


def test_guard_added_opacity_contradicts_kept_negation():
    text = ("There is no focal airspace opacity in the right lung base. An opacity is seen in the right lower zone. "
            "Consolidation is present in the right lower zone.")
    a = audit_report("x", text, [F("opacity", "right"), F("consolidation", "right")])
    got = [(p.type, p.sentences[1]) for p in a.problems]
    assert got == [("contradiction", "An opacity is seen in the right lower zone."),
                   ("contradiction", "Consolidation is present in the right lower zone.")]
    assert all(p.sentences[0] == "There is no focal airspace opacity in the right lung base." for p in a.problems)


def test_global_negation_against_a_stated_finding():
    assert types("The lungs are clear. There is consolidation in the left lower lobe.") == ["contradiction"]
    assert types("The lungs are clear. A nodule is seen in the right upper zone.") == ["contradiction"]
    assert types("Heart size is normal. Mild cardiomegaly.") == ["contradiction"]


def test_no_focal_opacity_beside_a_patchy_one_is_ambiguous():
    assert types("No focal airspace opacity. There are patchy opacities in the left lung base.") == ["ambiguous"]
    # a hedge against a flat denial is ambiguous too
    assert types("No pleural effusion. Blunting of the left costophrenic angle may represent a small effusion.") \
        == ["ambiguous"]


def test_stuttered_words():
    assert types("There are bilateral bilateral interstitial opacities.") == ["stutter"]
    p = audit_report("x", "There is no focal airspace airspace opacity.", []).problems
    assert [(q.type, q.detail) for q in p] == [("stutter", "'airspace airspace'")]
    assert types("There is a small left effusion effusion.") == ["stutter"]


def test_small_effusion_for_a_severe_finding():
    sev = [F("effusion", "right", severity="severe")]
    assert types("There is a small right pleural effusion.", sev) == ["severity"]
    assert types("There is small right pleural space opacification.", sev) == ["severity"]
    assert types("The heart is mildly enlarged.", [F("cardiomegaly", severity="severe")]) == ["severity"]
    assert types("Large left pleural effusion.", [F("effusion", "left", extent="small")]) == ["severity"]


def test_laterality_against_findings():
    a = audit_report("x", "There is a left pleural effusion.", [F("effusion", "right")])
    assert [p.type for p in a.problems] == ["laterality"]
    assert "right" in a.problems[0].detail
    assert a.unstated == ("effusion (right)",)
    # the side of each phrase is its own: the opacity is on the right, the atelectasis on both sides
    assert types("There is right basal patchy opacity and bibasal atelectasis.",
                 [F("opacity", "right"), F("atelectasis", "bilateral")]) == []


def test_numbers_and_units():
    assert types("A nodule measuring 12 is seen in the right upper lobe.") == ["numbers"]
    assert types("There is a 250 mm mass in the left lung.") == ["numbers"]
    assert types("A 45 mm nodule in the right upper lobe.") == ["numbers"]      # over 30 mm is a mass
    sized = [Finding("nodule", "lung-nodule-classic", 0.96, side="right", long_axis=10.0)]
    assert types("A nodule measuring 25 mm is seen in the right lung.", sized) == ["numbers"]


# --- negatives: reports a careful reader signs --------------------------------------------------------

@pytest.mark.parametrize("text, findings", [
    ("The heart is normal in size. The lungs are clear. No pneumothorax or pleural effusion.", []),
    ("Heart size is normal. The lungs are clear. Calcified granuloma in the right upper lobe.",
     [F("calcified_granuloma", "right")]),
    ("The lungs are otherwise clear. There is consolidation in the left lower lobe.", [F("consolidation", "left")]),
    ("No large pleural effusion. Small left pleural effusion.", [F("effusion", "left", extent="small")]),
    ("No focal consolidation, pneumothorax or large pleural effusion. Small left pleural effusion.",
     [F("effusion", "left", extent="small")]),
    ("No pleural effusion on the right. Small left pleural effusion.", [F("effusion", "left", extent="small")]),
    ("No pneumothorax. Mild cardiomegaly.", [F("cardiomegaly", severity="mild")]),
    ("Heart size is at the upper limits of normal. No focal consolidation.", [F("cardiomegaly", severity="mild")]),
    ("No acute infiltrate. Chronic interstitial opacities are unchanged.", [F("opacity", "bilateral")]),
    ("A solid nodule measuring 10 x 8 mm is seen in the right lung.", [F("nodule", "right")]),
    ("Moderate right pleural effusion.", [F("effusion", "right", severity="moderate")]),
    ("Pneumothorax is present on the left and effusion is not seen.", [F("pneumothorax", "left")]),
    ("There is no pneumothorax. The previously seen right effusion has resolved.", []),
    ("No focal airspace disease. A 6 mm nodular opacity overlies the left fifth rib.", []),
])
def test_not_flagged(text, findings):
    assert audit_report("x", text, findings).problems == ()


def test_summary_counts_reports_and_problems():
    audits = [audit_report("a", "Normal chest x-XXXX. XXXX are normal.", []),
              audit_report("b", "The lungs are clear.", []),
              audit_report("c", "Effusion effusion.", None)]
    s = summarise(audits)
    assert s["totals"]["placeholder"] == {"problems": 2, "reports": 1}
    assert s["totals"]["stutter"] == {"problems": 1, "reports": 1}
    assert s["reports_with_problem"] == 2 and s["n"] == 3 and s["n_without_findings"] == 1


# --- CLI ------------------------------------------------------------------------------------------------

def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_cli_end_to_end_with_row_findings(tmp_path, capsys):
    rows = [{"id": "a", "generated": "There is no focal airspace opacity in the right lung base. "
                                     "An opacity is seen in the right lower zone.",
             "reference": "The lungs are clear.", "findings": [{"kind": "opacity", "side": "right"}]},
            {"id": "b", "generated": "There is a small right pleural effusion.", "reference": "Normal XXXX.",
             "findings": [{"kind": "effusion", "side": "right", "attributes": {"severity": "severe"}}]}]
    inp, out = _jsonl(tmp_path / "g.jsonl", rows), tmp_path / "audit.json"
    assert main(["audit-reports", str(inp), "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["n"] == 2 and res["totals"]["contradiction"]["reports"] == 1
    assert res["totals"]["severity"]["reports"] == 1 and res["totals"]["placeholder"]["reports"] == 0
    assert [p["type"] for p in res["reports"][0]["problems"]] == ["contradiction"]
    assert "contradiction" in capsys.readouterr().out
    assert main(["audit-reports", str(inp), "--field", "reference", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["totals"]["placeholder"] == {"problems": 1, "reports": 1}


def test_cli_rows_without_findings_and_no_iu_files(tmp_path, capsys):
    inp = _jsonl(tmp_path / "g.jsonl", [{"id": "a", "generated": "Effusion effusion."}])
    missing = tmp_path / "nope.json"
    rc = main(["audit-reports", str(inp), "--annotation", str(missing), "--reports", str(missing)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1
    assert main(["audit-reports", str(inp), "--findings", "none"]) == 0


@pytest.mark.parametrize("content, why", [
    (None, "not found"),
    ("{not json\n", "not valid JSON"),
    ('{"id": "a"}\n', "'generated' is missing"),
    ('{"id": "a", "generated": "x"}\n{"id": "a", "generated": "y"}\n', "appears twice"),
    ('{"id": "a", "generated": "x", "findings": [{"side": "left"}]}\n', "'kind'"),
    ("", "empty"),
])
def test_cli_bad_input(tmp_path, capsys, content, why):
    inp = tmp_path / "g.jsonl"
    if content is not None:
        inp.write_text(content)
    out = tmp_path / "audit.json"
    rc = main(["audit-reports", str(inp), "--findings", "none", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and why in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_read_rows_findings_become_findings(tmp_path):
    inp = _jsonl(tmp_path / "g.jsonl", [{"id": 7, "generated": "x", "findings": [{"kind": "nodule"}]}])
    (row,) = read_rows(inp)
    assert row["id"] == "7" and row["findings"][0].kind == "nodule" and row["findings"][0].present


def test_iu_oracle_findings_when_data_present(tmp_path):
    from radscribe.data.paths import shared_data_dir

    iu = shared_data_dir() / "iu_xray_reports"
    if not (iu / "r2gen_split_annotation.json").is_file():
        pytest.skip("IU X-ray reports not in ../shared/data")
    from radscribe.evaluate.audit import iu_findings

    known = iu_findings(iu / "r2gen_split_annotation.json", iu / "indiana_reports.csv")
    assert len(known) == 2069 + 296 + 590
    # a row without findings gets its study's MeSH findings: a report that misses them is flagged unstated
    some = next(k for k, fs in known.items() if any(f.kind == "cardiomegaly" for f in fs))
    inp = _jsonl(tmp_path / "g.jsonl", [{"id": some, "generated": "The heart is normal in size."}])
    out = tmp_path / "a.json"
    assert main(["audit-reports", str(inp), "--out", str(out)]) == 0
    rep = json.loads(out.read_text())["reports"][0]
    assert any(u.startswith("cardiomegaly") for u in rep["unstated"])


@pytest.mark.parametrize("text, findings, expected", [
    # found in the hand check (docs/parts/audit.md): fixed after it
    ("There are numerous bilateral pulmonary nodules. The largest measures approximately 7.0 cm.", [], ["numbers"]),
    ("Lungs are hyperexpanded but clear. Fibrosis is present.", [F("fibrosis")], ["ambiguous"]),
    ("The lungs are clear. Mild increased lung markings are present.", [F("increased_markings")], ["ambiguous"]),
    ("Both lungs are clear. No change in the small calcified right upper lobe nodule.",
     [F("calcified_granuloma", "right")], []),
])
def test_hand_check_cases(text, findings, expected):
    assert types(text, findings) == expected


def test_pseudo_negation_states_the_finding():
    a = audit_report("x", "No change in the large hiatus hernia.", [F("hiatal_hernia", extent="large")])
    assert a.problems == () and a.unstated == ()


@pytest.mark.parametrize("text", [
    # each phrase takes its own side: nothing here is on the side the clear lung is
    "The right lung is clear. Streaky opacity within the left lung base which may represent atelectasis.",
    "The right lung appears clear. There is minimal patchy atelectasis or early infiltrate in left lung base.",
    "The left lung is clear. There is slightly increased opacity of the right base compared to the left.",
])
def test_sides_of_a_clear_lung(text):
    assert types(text) == []


def test_list_under_one_place_takes_its_side():
    # "Consolidation, atelectasis ... in the left lower lobe have cleared" denies them on the left only
    assert types("Consolidation and atelectasis in the left lower lobe have cleared. "
                 "A patchy infiltrate is present in the right middle lobe.") == []
    assert types("Consolidation and atelectasis in the left lower lobe have cleared. "
                 "Consolidation is present in the left lower lobe.") == ["contradiction"]


def test_clear_of_focal_disease_is_narrow():
    assert types("The lungs are grossly clear of focal airspace disease. "
                 "The lungs are hypoinflated with central bronchovascular crowding.") == []
    assert types("The lungs are clear. Bronchovascular crowding is present.") == ["ambiguous"]


def test_repeated_sentence_and_writer_stand_in():
    assert types("A support device is seen. The heart is normal. A support device is seen.") == ["stutter"]
    assert types("An other finding is seen on the right.") == ["placeholder"]
    # an impression that restates a finding in other words is not a repeat
    assert types("Degenerative change is present. Degenerative change.") == []
