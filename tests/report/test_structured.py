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
    assert r.findings == "A 7.2 x 6.1 mm solid nodule in the right upper lobe."
    assert r.impression.startswith("1. Right upper lobe solid nodule, 7.2 x 6.1 mm.\n2. Fleischner 2017")
    # mean diameter 6.65 mm -> Fleischner solid single 6-8 mm
    assert "Fleischner 2017 (solid single 6-8 mm, 6.7 mm mean diameter)" in r.impression
    assert "CT at 6-12 months" in r.impression
    assert "confidence" not in r.findings + r.impression and "lung-nodule-classic" not in r.findings + r.impression


def test_calcified_nodule_gets_no_follow_up_recommendation():
    n = _f("nodule", detector="lung-nodule-classic", confidence=0.9, side="left", location="left_lung",
           long_axis=5, short_axis=5, attributes={"density": "calcified"})
    r = write_structured([n], region="chest", modality="CT", detectors_run=["lung-nodule-classic"])
    assert "calcified nodule" in r.findings and "Fleischner" not in r.impression


def test_no_nodule_with_nodule_detector_is_a_pertinent_negative_not_a_normal_study():
    r = write_structured([], region="chest", modality="CT", detectors_run=["lung-nodule-classic"])
    assert r.findings == "No pulmonary nodule or mass of 4 mm or more is detected."  # what was assessed, no more
    assert "heart" not in r.findings.lower()  # a nodule detector says nothing about the heart
    assert r.impression == "No pulmonary nodule or mass of 4 mm or more detected."


def test_oracle_chest_findings_fill_normal_systems_and_keep_laterality():
    fs = [_f("opacity", side="left", location="lower_zone", attributes={"severity": "mild"}),
          _f("cardiomegaly", attributes={"severity": "mild"})]
    r = write_structured(fs, region="chest", assume_complete=True)
    assert "A mild opacity is seen in the left lower zone." in r.findings
    assert "Mild cardiomegaly is present." in r.findings
    assert "No pleural effusion or pneumothorax." in r.findings
    assert "heart size and mediastinal contours are within normal limits" not in r.findings
    assert r.impression == "1. Mild left lower zone opacity.\n2. Mild cardiomegaly."


def test_a_tortuous_aorta_is_named_as_such_beside_normal_mediastinal_contours():
    from radscribe.data.iu_xray import mesh_to_findings

    r = write_structured(mesh_to_findings("Aorta/tortuous"), region="chest", assume_complete=True)
    assert "Tortuous aorta is present." in r.findings and "idened mediastinum" not in r.findings + r.impression
    assert "The heart size and mediastinal contours are within normal limits." in r.findings  # still true
    # a single chronic finding on a complete (oracle) list: no acute abnormality, then the finding; not numbered
    assert r.impression == "No acute cardiopulmonary abnormality. Tortuous aorta."


def test_normal_oracle_study():
    r = write_structured([], region="chest", assume_complete=True)
    assert "The lungs are clear" in r.findings and r.impression == "No acute cardiopulmonary abnormality."


def test_unsupported_study_says_so_instead_of_inventing():
    r = write_structured([], region="brain", modality="MR")
    assert "No automated detector" in r.findings and "not a statement that the study is normal" in r.findings


def test_model_findings_keep_confidence_out_of_the_prose_and_in_the_method():
    from radscribe.report.structured import method_lines

    pos = _f("pneumonia", detector="cxr-pneumonia", confidence=0.97, confidence_type="calibrated_probability",
             attributes={"attention_side": "right"})
    assert describe_finding(pos) == "Pneumonia is present."
    neg = _f("glioma", detector="mri-brain-tumor", confidence=0.95, present=False)
    r = write_structured([neg], region="brain", modality="MR", detectors_run=["mri-brain-tumor"])
    assert r.findings == "No glioma is identified."
    lines = method_lines([pos, neg], ["cxr-pneumonia", "mri-brain-tumor"])
    assert lines[0] == "Detectors run: cxr-pneumonia, mri-brain-tumor."
    assert lines[1] == ("Finding 1 (pneumonia): cxr-pneumonia, confidence 0.97 (calibrated probability); the model's "
                        "attention is over the right side (not a statement of side).")
    assert lines[2] == "Finding 2 (glioma, absent): mri-brain-tumor, confidence of absence 0.95 (heuristic score)."


def _mass(**kw):
    attrs = {"zone": "upper_zone", "abuts": ["pleura"], "craniocaudal_mm": 41.0, "density": "solid",
             "margin": "lobulated"}
    attrs.update(kw.pop("attributes", {}))
    kw.setdefault("side", "right")
    return _f("mass", detector="lung-nodule-classic", confidence=0.9, location=f"{kw['side']}_lung", long_axis=46.0,
              short_axis=38.0, volume=41000.0, attributes=attrs, **kw)


def test_a_lung_mass_is_described_with_its_axes_zone_and_what_it_abuts_and_ranked_first():
    nodule = _f("nodule", detector="lung-nodule-classic", confidence=0.8, side="left", location="left_lower_lobe",
                long_axis=6.0, short_axis=5.0, attributes={"density": "solid"})
    r = write_structured([nodule, _mass()], region="chest", modality="CT", detectors_run=["lung-nodule-classic"])
    assert "A 46 x 38 mm lobulated solid mass in the right upper zone, abutting the pleura (craniocaudal 41 mm)." \
        in r.findings
    lines = r.impression.splitlines()
    assert lines[0] == ("1. Right upper zone lung mass 46 mm, abutting the pleura; further characterisation "
                        "(e.g. contrast CT / tissue sampling) recommended.")
    assert lines[1].startswith("2. Left lower lobe solid nodule, 6 x 5 mm.")
    assert "No pulmonary nodule" not in r.findings  # something was found: no negative statement


def test_a_mass_abutting_two_structures_names_both():
    m = _mass(side="left", attributes={"zone": "lower", "abuts": ["mediastinum", "hilum"], "margin": "spiculated"})
    assert describe_finding(m) == ("A 46 x 38 mm spiculated solid mass in the left lower zone, abutting the "
                                   "mediastinum and the hilum (craniocaudal 41 mm).")


def test_related_nodules_are_grouped_with_the_largest_named():
    fs = [_f("nodule", detector="lung-nodule-classic", confidence=0.8, side="right", location=loc, long_axis=a,
             short_axis=a - 2, attributes={"density": "solid"})
          for a, loc in ((8.0, "right_upper_lobe"), (20.0, "right_lower_lobe"), (6.0, "right_lung"))]
    r = write_structured(fs, region="chest", modality="CT", detectors_run=["lung-nodule-classic"])
    assert r.findings == "Three solid nodules in the right lung, the largest 20 x 18 mm in the lower lobe."
    assert r.impression.startswith("1. Three solid right lung nodules, the largest 20 x 18 mm.\n"
                                   "2. Fleischner 2017 (solid multiple > 8 mm, 19 mm mean diameter)")


def test_the_impression_ranks_and_summarises_instead_of_copying():
    from radscribe.data.iu_xray import mesh_to_findings

    fs = mesh_to_findings("Spine/degenerative;Cardiomegaly/mild;Aorta/tortuous;Pleural Effusion/right/large;"
                          "Lung/hilum/left/prominent")
    r = write_structured(fs, region="chest", assume_complete=True)
    assert "Large pleural effusion is present on the right." in r.findings
    assert "Left hilar enlargement is present." in r.findings
    assert r.impression.splitlines() == ["1. Large right pleural effusion.", "2. Left hilar enlargement.",
                                         "3. Mild cardiomegaly.", "4. Tortuous aorta, degenerative change."]


def test_text_derived_findings_quote_no_confidence():
    for det in ("mesh-oracle", "labeler-indication"):
        f = _f("effusion", detector=det, side="left")
        assert "confidence" not in describe_finding(f)


def test_impression_lines_name_the_place_the_way_a_report_does():
    def imp(kind, location):
        return write_structured([_f(kind, detector="x", location=location)], region="chest", detectors_run=["x"]).impression

    assert imp("stone", "kidneys") == "Stone in the kidneys."
    assert imp("stone", "right_kidney") == "Right kidney stone."
    assert imp("pneumonia", "lungs") == "Pneumonia."
    assert imp("glioma", "cerebral_hemisphere") == "Glioma in the cerebral hemisphere."
