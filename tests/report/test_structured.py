"""The deterministic writer: every finding appears with its side, size and location; no invention."""

from radscribe.findings.model import Finding
from radscribe.report.structured import describe_finding, write_structured


def _f(kind, **kw):
    kw.setdefault("detector", "mesh-oracle")
    kw.setdefault("confidence", 1.0)
    return Finding(kind=kind, **kw)


def test_nodule_sentence_has_size_side_lobe_and_fleischner():
    n = _f("nodule", detector="lung-nodule-classic", confidence=0.8, side="right", location="right_upper_lobe",
           long_axis=7.2, short_axis=6.1, attributes={"density": "solid"})
    r = write_structured([n], region="chest", modality="CT", detectors_run=["lung-nodule-classic"])
    assert "solid nodule measuring 7.2 x 6.1 mm is seen in the right upper lobe" in r.findings
    # mean diameter 6.65 mm -> Fleischner solid single 6-8 mm
    assert "6.7 mm mean diameter" in r.impression
    assert "Fleischner 2017 (solid single 6-8 mm)" in r.impression
    assert "CT at 6-12 months" in r.impression


def test_calcified_nodule_gets_no_follow_up_recommendation():
    n = _f("nodule", detector="lung-nodule-classic", confidence=0.9, side="left", location="left_lung",
           long_axis=5, short_axis=5, attributes={"density": "calcified"})
    r = write_structured([n], region="chest", modality="CT", detectors_run=["lung-nodule-classic"])
    assert "calcified nodule" in r.findings and "Fleischner" not in r.impression


def test_no_nodule_with_nodule_detector_is_a_pertinent_negative_not_a_normal_study():
    r = write_structured([], region="chest", modality="CT", detectors_run=["lung-nodule-classic"])
    assert "No pulmonary nodule is identified" in r.findings
    assert "heart" not in r.findings.lower()  # a nodule detector says nothing about the heart
    assert r.impression == "No pulmonary nodule detected."


def test_oracle_chest_findings_fill_normal_systems_and_keep_laterality():
    fs = [_f("opacity", side="left", location="lower_zone", attributes={"severity": "mild"}),
          _f("cardiomegaly", attributes={"severity": "mild"})]
    r = write_structured(fs, region="chest", assume_complete=True)
    assert "A mild opacity is seen in the left lower zone." in r.findings
    assert "Mild cardiomegaly is present." in r.findings
    assert "No pleural effusion or pneumothorax." in r.findings
    assert "heart size and mediastinal contours are within normal limits" not in r.findings
    assert r.impression.startswith("1. Mild opacity in the left lower zone.")


def test_a_tortuous_aorta_is_named_as_such_beside_normal_mediastinal_contours():
    from radscribe.data.iu_xray import mesh_to_findings

    r = write_structured(mesh_to_findings("Aorta/tortuous"), region="chest", assume_complete=True)
    assert "Tortuous aorta is present." in r.findings and "idened mediastinum" not in r.findings + r.impression
    assert "The heart size and mediastinal contours are within normal limits." in r.findings  # still true
    assert r.impression == "Tortuous aorta."  # a single finding is not numbered


def test_normal_oracle_study():
    r = write_structured([], region="chest", assume_complete=True)
    assert "The lungs are clear" in r.findings and r.impression == "No acute cardiopulmonary abnormality."


def test_unsupported_study_says_so_instead_of_inventing():
    r = write_structured([], region="brain", modality="MR")
    assert "No automated detector" in r.findings and "not a statement that the study is normal" in r.findings


def test_model_findings_carry_confidence_and_negatives_are_phrased():
    pos = _f("pneumonia", detector="cxr-pneumonia", confidence=0.97)
    assert describe_finding(pos) == "Pneumonia is present (confidence 0.97, cxr-pneumonia)."
    neg = _f("glioma", detector="mri-brain-tumor", confidence=0.95, present=False)
    r = write_structured([neg], region="brain", modality="MR", detectors_run=["mri-brain-tumor"])
    assert "No glioma identified (confidence 0.95 normal, mri-brain-tumor)." in r.findings


def test_text_derived_findings_quote_no_confidence():
    for det in ("mesh-oracle", "labeler-indication"):
        f = _f("effusion", detector=det, side="left")
        assert "confidence" not in describe_finding(f)
