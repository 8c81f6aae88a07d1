"""Rule-based labeler on real IU X-ray report sentences (quoted with their indiana_reports.csv uid)."""

from __future__ import annotations

import pytest

from radscribe.knowledge.labeler import Mention, label_report, label_text, split_sentences


def one(text: str, kind: str) -> Mention:
    labels = label_report(text)
    assert kind in labels, f"{kind} not found in {text!r}: {sorted(labels)}"
    return labels[kind]


@pytest.mark.parametrize("sentence, kinds", [
    ("No pneumothorax or pleural effusion.", ["pneumothorax", "effusion"]),                      # uid 11
    ("There are no XXXX of a pleural effusion.", ["effusion"]),                                 # uid 1
    ("No displaced rib fractures, pneumothorax, or pleural effusion identified.",               # uid 3
     ["fracture", "pneumothorax", "effusion"]),
    ("Lungs are clear without focal consolidation, effusion, or pneumothorax.",                 # uid 30
     ["consolidation", "effusion", "pneumothorax"]),
    ("No evidence of pneumothorax or pleural effusions present.", ["pneumothorax", "effusion"]),  # uid 3416
    ("There is no focal airspace consolidation.", ["consolidation"]),                           # uid 57
    ("Heart size within normal limits.", ["cardiomegaly"]),                                     # uid 17
    ("Clear lungs.", ["opacity", "consolidation"]),                                             # uid 2
])
def test_negation(sentence, kinds):
    for k in kinds:
        assert one(sentence, k).status == "negative", (sentence, k)


def test_negation_scope_ends_at_however():
    labels = label_report("Emphysema, however no acute cardiopulmonary finding.")               # uid 35
    assert labels["emphysema"].status == "positive"
    assert labels["normal"].status == "positive"
    assert labels["no_finding"].status == "negative"     # emphysema is a finding


@pytest.mark.parametrize("sentence, kind", [
    ("Left basilar patchy opacities, which may represent atelectasis or infection.", "atelectasis"),  # uid 350
    ("Left basilar patchy opacities, which may represent atelectasis or infection.", "pneumonia"),
    ("A subtle infiltrate cannot be excluded.", "consolidation"),                               # uid 973
    ("There is mild diffuse interstitial prominence suggestive of edema.", "edema"),            # uid 88
    ("Heart size upper limits of normal.", "cardiomegaly"),
])
def test_uncertainty(sentence, kind):
    assert one(sentence, kind).status == "uncertain"


def test_negation_beats_uncertainty_in_its_scope():
    m = one("There is no focal airspace consolidation to suggest pneumonia.", "pneumonia")
    assert m.status == "negative"


def test_laterality_location_severity():
    m = one("Left basilar patchy opacities, which may represent atelectasis or infection.", "opacity")
    assert (m.status, m.side, m.location) == ("positive", "left", "lower_zone")
    m = one("Stable calcified granuloma in the right upper lobe.", "calcified_granuloma")       # uid 821
    assert (m.status, m.side, m.location) == ("positive", "right", "upper_zone")
    m = one("Mild medial right atelectasis.", "atelectasis")
    assert (m.status, m.side, m.severity) == ("positive", "right", "mild")
    m = one("Borderline cardiomegaly.", "cardiomegaly")                                        # uid 2
    assert (m.status, m.severity) == ("positive", "mild")
    m = one("The heart is again mildly enlarged.", "cardiomegaly")
    assert (m.status, m.severity) == ("positive", "mild")
    m = one("Elevated right hemidiaphragm.", "elevated_diaphragm")
    assert (m.status, m.side) == ("positive", "right")


def test_statement_negated_by_not():
    assert one("The heart is not enlarged.", "cardiomegaly").status == "negative"
    # a negation in an earlier list does not reach the statement's predicate
    assert one("No pleural effusion, the heart is enlarged.", "cardiomegaly").status == "positive"


def test_pseudo_negation_keeps_the_finding():
    m = one("No change in the small calcified granuloma in the right upper lobe.", "calcified_granuloma")  # uid 2171
    assert m.status == "positive" and m.side == "right"


def test_normal_report_gives_no_finding():
    text = ("The cardiac silhouette and mediastinum size are within normal limits. There is no pulmonary edema. "
            "There is no focal consolidation. There are no XXXX of a pleural effusion. There is no evidence "
            "of pneumothorax. Normal chest x-XXXX.")                                             # uid 1
    labels = label_report(text)
    assert labels["no_finding"].status == "positive"
    assert labels["normal"].status == "positive"
    assert {k for k, m in labels.items() if m.status == "positive"} == {"normal", "no_finding"}
    for k in ("cardiomegaly", "edema", "consolidation", "effusion", "pneumothorax"):
        assert labels[k].status == "negative", k


def test_positive_beats_negative_and_sides_combine():
    labels = label_report("No right pleural effusion. Small left pleural effusion. Small right effusion.")
    assert labels["effusion"].status == "positive"
    assert labels["effusion"].side == "bilateral"


def test_label_text_keeps_order_and_sentences():
    ms = label_text("Borderline cardiomegaly. Cardiac defibrillator XXXX overlies the right ventricle. "
                    "Clear lungs.")                                                              # uids 2, 104
    kinds = [m.kind for m in ms]
    assert kinds[0] == "cardiomegaly" and ms[0].sentence == "Borderline cardiomegaly."
    assert kinds.index("support_device") < kinds.index("opacity")
    assert ms[kinds.index("support_device")].status == "positive"


def test_split_sentences():
    assert split_sentences("1. Heart size normal. 2. A 1.5 cm nodule.\nNo effusion") == [
        "Heart size normal.", "A 1.5 cm nodule.", "No effusion"]
    assert split_sentences("") == []


@pytest.mark.parametrize("sentence, kind, status", [
    ("The heart is not significantly enlarged.", "cardiomegaly", "negative"),     # IU train, repeated wording
    ("The lungs are hypoventilated.", "hypoinflation", "positive"),
    ("Lower lung volumes on the AP projection.", "hypoinflation", "positive"),
    ("There are diffuse, bilateral interstitial opacities, with XXXX B lines demonstrated.", "edema", "positive"),
])
def test_wordings_found_by_the_guard_on_training_references(sentence, kind, status):
    assert one(sentence, kind).status == status


def test_kerley_b_lines_are_not_a_device():
    assert all(m.kind != "support_device" for m in label_text("Kerley B lines are present."))


@pytest.mark.parametrize("sentence, positive, negative", [
    # a tortuous aorta is its own kind, not a widened mediastinum (uids in the comments are IU reports)
    ("The thoracic aorta is torturous however the mediastinal contours are within normal limits.",
     ["tortuous_aorta"], ["enlarged_cardiomediastinum"]),
    ("Calcified tortuous aorta.", ["tortuous_aorta", "atherosclerosis"], []),
    ("Stable cardiomediastinal silhouette with normal heart size and aortic ectasia/tortuosity.", ["tortuous_aorta"], []),
    ("The aorta is dilated.", ["enlarged_cardiomediastinum"], ["tortuous_aorta"]),
    ("The aorta is normal.", [], ["tortuous_aorta", "enlarged_cardiomediastinum"]),
])
def test_tortuous_aorta_is_not_a_widened_mediastinum(sentence, positive, negative):
    labels = label_report(sentence)
    for k in positive:
        assert one(sentence, k).status == "positive", (sentence, k)
    for k in negative:
        assert k not in labels or labels[k].status == "negative", (sentence, k, labels.get(k))
