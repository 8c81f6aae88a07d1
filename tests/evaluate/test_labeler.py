"""Tests for radscribe/evaluate/labeler.py: the labeler scored against MeSH coding (synthetic rows)."""

from __future__ import annotations

import json
import subprocess
import sys

from radscribe.evaluate.labeler import validate_against_mesh

ROWS = {
    1: {"MeSH": "Cardiomegaly/mild", "findings": "The heart is enlarged.", "impression": "Cardiomegaly."},
    2: {"MeSH": "normal", "findings": "Heart size normal. Lungs are clear.", "impression": "No acute disease."},
    3: {"MeSH": "No Indexing", "findings": "Cardiomegaly.", "impression": ""},
    4: {"MeSH": "Pleural Effusion/left", "findings": "No pleural effusion.", "impression": "Normal chest."},
}


def test_validate_against_mesh_counts_per_kind_and_split():
    r = validate_against_mesh(ROWS, {1: "train", 2: "train", 4: "test"})
    assert r["n_reports"] == 3 and r["n_skipped_no_indexing"] == 1
    assert r["per_label"]["cardiomegaly"]["tp"] == 1 and r["per_label"]["cardiomegaly"]["fp"] == 0
    assert r["per_label"]["effusion"]["fn"] == 1 and r["per_label"]["effusion"]["tp"] == 0
    nf = r["per_label"]["no_finding"]
    assert (nf["tp"], nf["fp"]) == (1, 1)  # report 2 is normal; report 4's denied effusion is a miss
    assert r["micro"]["precision"] == 1.0 and r["micro"]["recall"] == 0.5  # kinds only, not no_finding
    assert r["micro_by_split"]["train"]["micro"]["f1"] == 1.0
    assert r["micro_by_split"]["test"]["micro"]["recall"] == 0.0
    assert {x["uid"]: x["missed"] for x in r["reports"]}[4] == ["effusion"]
    assert set(r["chexpert_level"]) == {"all", "train", "test"}


def test_knowledge_labeler_no_longer_reads_datasets():
    code = ("import sys, radscribe.knowledge.labeler; "
            "print(sorted(m for m in sys.modules if m.startswith('radscribe.data')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.replace("'", '"')) == []


def test_label_reports_without_out_is_one_error_line(tmp_path):
    csv = tmp_path / "r.csv"
    csv.write_text("uid,MeSH,indication,findings,impression\n1,normal,cough,Lungs clear.,Normal.\n", encoding="utf-8")
    p = subprocess.run([sys.executable, "-m", "radscribe", "label-reports", "--reports", str(csv)],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == ["error: label-reports needs --out FILE.json (or --validate-mesh)"]


def test_label_reports_validate_mesh_writes_scores(tmp_path):
    csv = tmp_path / "r.csv"
    lines = ["uid,MeSH,indication,findings,impression"]
    lines += [f'{uid},{r["MeSH"]},,"{r["findings"]}","{r["impression"]}"' for uid, r in ROWS.items()]
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "mesh.json"
    p = subprocess.run([sys.executable, "-m", "radscribe", "label-reports", "--reports", str(csv), "--validate-mesh",
                        "--out", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    r = json.loads(out.read_text())
    assert r["n_reports"] == 3 and r["per_label"]["cardiomegaly"]["tp"] == 1
