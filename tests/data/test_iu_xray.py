"""IU X-ray adapter: R2Gen cleaning, MeSH -> oracle findings, and the real split (when the data is present)."""

from __future__ import annotations

import json

import pytest

from radscribe.data.iu_xray import clean_report_r2gen, load_cov_ctr, load_iu, mesh_term_kind, mesh_to_findings
from radscribe.errors import RadscribeInputError


@pytest.mark.parametrize("text, expected", [
    ("The heart is normal. The lungs are clear.", "the heart is normal . the lungs are clear ."),
    # '..' collapses, '1. ' is deleted, '. 2. ' becomes a sentence break
    ("1. No acute disease.. 2. Stable.", "no acute disease . stable ."),
    # hyphens stay; XXXX is lower-cased like any word
    ("Normal chest x-XXXX.", "normal chest x-xxxx ."),
    # ( ) ; : < go: R2Gen's class '[...:-\\[...]' is a range from ':' to '[' (so '<' too), '-' stays
    ("Heart size (normal); no effusion: <5 mm", "heart size normal no effusion 5 mm ."),
    # R2Gen never drops an empty sentence (its filter compares a str with [])
    ("Clear. . Normal.", "clear .  . normal ."),
    ('The "left" lung\'s base/apex', "the left lungs baseapex ."),
])
def test_clean_report_r2gen(text, expected):
    assert clean_report_r2gen(text) == expected


def test_mesh_to_findings_qualifiers():
    fs = mesh_to_findings("Opacity/lung/base/left/mild;Cardiomegaly/borderline;"
                          "Calcified Granuloma/lung/upper lobe/right;Lung/hypoinflation;"
                          "Nodule/lung/lingula/multiple;Pleural Effusion/bilateral/small;Deformity/ribs/right")
    by = {f.attributes["mesh"]: f for f in fs}
    f = by["Opacity/lung/base/left/mild"]
    assert (f.kind, f.side, f.location, f.attributes["severity"]) == ("opacity", "left", "lower_zone", "mild")
    assert f.detector == "mesh-oracle" and f.confidence == 1.0 and f.present
    assert by["Cardiomegaly/borderline"].attributes["severity"] == "mild"
    f = by["Calcified Granuloma/lung/upper lobe/right"]
    assert (f.kind, f.side, f.location) == ("calcified_granuloma", "right", "upper_zone")
    assert by["Lung/hypoinflation"].kind == "hypoinflation"        # head/qualifier entry beats the bare head
    f = by["Nodule/lung/lingula/multiple"]
    assert (f.kind, f.side, f.location, f.attributes["count"]) == ("nodule", "left", "middle_zone", "multiple")
    f = by["Pleural Effusion/bilateral/small"]
    assert (f.kind, f.side, f.attributes["extent"]) == ("effusion", "bilateral", "small")
    f = by["Deformity/ribs/right"]                                 # no kind of its own: kept as "other"
    assert (f.kind, f.side, f.attributes["descriptors"]) == ("other", "right", ["ribs"])


def test_mesh_normal_and_unknown():
    assert mesh_to_findings("normal") == ()
    assert mesh_to_findings("No Indexing") == ()
    assert mesh_term_kind("Calcinosis/aorta") == "atherosclerosis"
    assert mesh_term_kind("Calcinosis/lung/hilum/lymph nodes") == "calcification"
    assert mesh_term_kind("Subcutaneous  Emphysema") == "subcutaneous_emphysema"   # double space in the source


def test_load_iu_small_files(tmp_path):
    csv_path = tmp_path / "reports.csv"
    csv_path.write_text("uid,MeSH,Problems,image,indication,comparison,findings,impression\n"
                        "7,Cardiomegaly/mild,Cardiomegaly,x,Chest pain and cough,None,Mild cardiomegaly.,Stable.\n"
                        "8,normal,normal,x,Evaluate for pneumonia,,The lungs are clear.,Normal chest.\n")
    ann = {"train": [{"id": "CXR7_IM-0001", "report": "Mild cardiomegaly. Stable."}],
           "val": [], "test": [{"id": "CXR8_IM-0002", "report": "The lungs are clear. Normal chest."}]}
    ann_path = tmp_path / "ann.json"
    ann_path.write_text(json.dumps(ann))
    d = load_iu(ann_path, csv_path)
    assert [len(d[s]) for s in ("train", "val", "test")] == [1, 0, 1]
    s = d["train"][0]
    assert (s.uid, s.split, s.reference, s.impression) == (7, "train", "Mild cardiomegaly. Stable.", "Stable.")
    assert [f.kind for f in s.oracle] == ["cardiomegaly"]
    assert d["test"][0].oracle == ()
    # "Evaluate for pneumonia" is a question, not a finding
    assert d["test"][0].from_indication == ()
    ann["test"].append({"id": "CXR9_IM-0003", "report": "x"})
    ann_path.write_text(json.dumps(ann))
    with pytest.raises(RadscribeInputError, match="CXR9_IM-0003"):
        load_iu(ann_path, csv_path)
    with pytest.raises(RadscribeInputError, match="not found"):
        load_iu(tmp_path / "missing.json", csv_path)


def test_real_split_sizes_and_mesh(shared_dataset):
    d = shared_dataset("iu_xray_reports")
    iu = load_iu(d / "r2gen_split_annotation.json", d / "indiana_reports.csv")
    assert {k: len(v) for k, v in iu.items()} == {"train": 2069, "val": 296, "test": 590}
    first = iu["test"][0]
    assert first.id == "CXR3030_IM-1405" and first.uid == 3030 and first.mesh == ("normal",) and first.oracle == ()
    # every positive MeSH term of every study is represented by one oracle finding
    for split in iu.values():
        for s in split:
            coded = {t for t in s.mesh if t.lower() not in ("normal", "no indexing")}
            assert len(s.oracle) == len({t.strip().lower() for t in coded})
    # the indication rarely states a finding: that is the point of the --findings indication setting
    n_ind = sum(bool(s.from_indication) for s in iu["test"])
    assert 0 < n_ind < 0.2 * len(iu["test"])


def test_cov_ctr(shared_dataset):
    d = shared_dataset("cov_ctr")
    cov = load_cov_ctr(d / "annotation.json")
    assert [len(cov[s]) for s in ("train", "val", "test")] == [576, 72, 72]
    assert cov["test"][0].image.is_file()


# --- de-identification placeholders in training targets (issue 19) ------------------------------------------

@pytest.mark.parametrize("text, repaired", [
    # fixed collocations are mended, the rest of the report is kept word for word
    ("Normal chest x-XXXX. No effusion.", "Normal chest x-ray. No effusion."),
    ("There is scarring in the right hilar lymph XXXX.", "There is scarring in the right hilar lymph nodes."),
    ("There are no XXXX of a large pleural effusion.", "There are no signs of a large pleural effusion."),
    ("No XXXX of pleural effusion.", "No signs of pleural effusion."),
    ("No XXXX focal airspace consolidation. Heart normal.", "No focal airspace consolidation. Heart normal."),
    ("Blunting of the left costophrenic XXXX.", "Blunting of the left costophrenic angle."),
    ("Mid sternotomy XXXX again noted.", "Mid sternotomy wires again noted."),
    # a sentence whose hidden word is not plain from the context goes
    ("The heart is normal. The XXXX are intact. No pneumothorax.", "The heart is normal. No pneumothorax."),
    ("Pulmonary XXXX are normal.", ""),
    # R2Gen-cleaned (lower-case) text too
    ("normal chest x-xxxx . the xxxx are intact .", "normal chest x-ray ."),
    ("No placeholder here.  Two spaces kept.", "No placeholder here.  Two spaces kept."),
])
def test_clean_placeholders_repair(text, repaired):
    from radscribe.data.iu_xray import PLACEHOLDER, clean_placeholders

    out = clean_placeholders(text)
    assert out == repaired
    assert not PLACEHOLDER.search(out)


def test_clean_placeholders_modes():
    from radscribe.data.iu_xray import clean_placeholders

    text = "Normal chest x-XXXX. The lungs are clear. XXXX are normal."
    assert clean_placeholders(text, "keep") == text                 # the committed weights' targets
    assert clean_placeholders(text, "drop") == "The lungs are clear."
    assert clean_placeholders(text, "repair") == "Normal chest x-ray. The lungs are clear."
    with pytest.raises(RadscribeInputError, match="placeholder mode"):
        clean_placeholders(text, "mask")


def test_clean_targets_keeps_everything_but_the_reference():
    from radscribe.data.iu_xray import IUStudy, clean_targets

    st = IUStudy(id="CXR1_IM-1", uid=1, split="train", reference="Normal chest x-XXXX. XXXX are normal.",
                 findings_text="", impression="", indication="Cough.", mesh=(), oracle=(), from_indication=())
    (clean,) = clean_targets([st])
    assert clean.reference == "Normal chest x-ray." and clean.id == st.id and clean.indication == "Cough."
    assert clean_targets([st], "keep") == [st]
    with pytest.raises(RadscribeInputError):
        clean_targets([st], "bogus")


def test_clean_targets_on_the_real_training_split():
    from radscribe.data.iu_xray import PLACEHOLDER, clean_targets
    from radscribe.data.paths import shared_data_dir

    iu = shared_data_dir() / "iu_xray_reports"
    if not (iu / "r2gen_split_annotation.json").is_file():
        pytest.skip("IU X-ray reports not in ../shared/data")
    train = load_iu(iu / "r2gen_split_annotation.json", iu / "indiana_reports.csv")["train"]
    assert sum(bool(PLACEHOLDER.search(s.reference)) for s in train) == 907
    cleaned = clean_targets(train)
    assert not any(PLACEHOLDER.search(s.reference) for s in cleaned)
    # most of the text stays: fewer than 1 word in 6 goes, and at most a handful of targets end up empty
    words = lambda sts: sum(len(s.reference.split()) for s in sts)  # noqa: E731
    assert words(cleaned) > 0.83 * words(train)
    assert sum(not s.reference.strip() for s in cleaned) <= 5
