"""``radscribe evaluate-reports`` and ``radscribe label-reports`` end to end, good and bad input."""

from __future__ import annotations

import json

import pytest

from radscribe.cli import main
from radscribe.evaluate.clinical import clinical_efficacy
from radscribe.evaluate.nlg import score_nlg

ANN = {"train": [{"id": f"CXR{i}_IM-000{i}", "report": "The heart is normal. The lungs are clear."}
                 for i in range(1, 4)],
       "val": [],
       "test": [{"id": "CXR10_IM-0010", "report": "Mild cardiomegaly. No pleural effusion."},
                {"id": "CXR11_IM-0011", "report": "The heart is normal. The lungs are clear. No pneumothorax."}]}


@pytest.fixture
def files(tmp_path):
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(ANN))
    return tmp_path, ann


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_end_to_end_references_from_annotation(files, capsys):
    tmp, ann = files
    gens = {"CXR10_IM-0010": "Cardiomegaly. No effusion.", "CXR11_IM-0011": "The lungs are clear. Normal heart."}
    inp = write_jsonl(tmp / "gen.jsonl", [{"id": k, "generated": v} for k, v in gens.items()])
    out = tmp / "res.json"
    rc = main(["evaluate-reports", str(inp), "--annotation", str(ann), "--out", str(out), "--no-meteor",
               "--protocol", "clean"])
    assert rc == 0
    res = json.loads(out.read_text())
    refs = {e["id"]: e["report"] for e in ANN["test"]}
    want = score_nlg(refs, gens, meteor=False)
    for k in ("BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4", "ROUGE_L", "CIDEr"):
        assert res[k] == pytest.approx(want[k])
    assert res["METEOR"] is None and res["n"] == 2
    ce = clinical_efficacy(refs, gens)
    assert res["CE"]["micro"] == pytest.approx(ce["micro"])
    assert set(res["CE"]["per_label"]) == set(ce["labels"]) and len(ce["labels"]) == 14
    assert "BLEU_4" in capsys.readouterr().out


def test_r2gen_protocol_with_own_references(files):
    tmp, ann = files
    inp = write_jsonl(tmp / "gen.jsonl", [{"id": "x", "generated": "The heart is normal.",
                                           "reference": "The heart is normal. Rare zebra."}])
    out = tmp / "res.json"
    assert main(["evaluate-reports", str(inp), "--annotation", str(ann), "--out", str(out), "--no-meteor"]) == 0
    res = json.loads(out.read_text())
    assert res["protocol"] == "r2gen"
    # "rare zebra" is outside the 3-count training vocabulary: both read <unk>
    assert res["BLEU_1"] < 1.0


@pytest.mark.parametrize("content, message", [
    (None, "not found"),
    ("", "empty"),
    ('{"id": "CXR10_IM-0010", "generated": "x"}\n{"id": oops}\n', "line 2"),
    ('{"id": "CXR10_IM-0010"}\n', "line 1"),
    ('{"id": "CXR99_IM-0099", "generated": "x"}\n', "CXR99_IM-0099"),
    ('{"id": "CXR10_IM-0010", "generated": "a"}\n{"id": "CXR10_IM-0010", "generated": "b"}\n', "twice"),
])
def test_bad_input_exits_2(files, capsys, content, message):
    tmp, ann = files
    inp = tmp / "gen.jsonl"
    if content is not None:
        inp.write_text(content)
    out = tmp / "res.json"
    rc = main(["evaluate-reports", str(inp), "--annotation", str(ann), "--out", str(out), "--no-meteor"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and message in err
    assert not out.exists()


def test_label_reports_validate_mesh(tmp_path, capsys):
    csv_path = tmp_path / "r.csv"
    csv_path.write_text("uid,MeSH,Problems,image,indication,comparison,findings,impression\n"
                        "1,Cardiomegaly/borderline,x,x,x,x,Borderline cardiomegaly. Clear lungs.,No acute disease.\n"
                        "2,normal,normal,x,x,x,No pneumothorax or pleural effusion.,Normal chest.\n"
                        "3,Pleural Effusion/left,x,x,x,x,No pleural effusion.,Normal.\n"
                        "4,No Indexing,x,x,x,x,Cardiomegaly.,\n")
    out = tmp_path / "val.json"
    assert main(["label-reports", "--reports", str(csv_path), "--validate-mesh", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["n_reports"] == 3 and res["n_skipped_no_indexing"] == 1
    c, e = res["per_label"]["cardiomegaly"], res["per_label"]["effusion"]
    assert (c["tp"], c["fp"], c["fn"], c["f1"]) == (1, 0, 0, 1.0)
    assert (e["tp"], e["fp"], e["fn"], e["recall"]) == (0, 0, 1, 0.0)
    nf = res["per_label"]["no_finding"]
    assert (nf["tp"], nf["fp"], nf["fn"]) == (1, 1, 0)       # report 3: the labeler reads no finding
    assert "cardiomegaly" in capsys.readouterr().out
    assert main(["label-reports", "--reports", str(tmp_path / "nope.csv"), "--validate-mesh"]) == 2
