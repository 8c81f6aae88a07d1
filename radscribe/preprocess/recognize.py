"""What was imaged: modality and body region, from the DICOM header and from the voxels.

Header: Modality, BodyPartExamined, Study/SeriesDescription and ProtocolName are matched against
DICOM body-part terms and the anatomy synonyms of :mod:`radscribe.knowledge.ontology`.

Content (CT, or any volume whose values look like Hounsfield units), on a downsampled copy
(<= 48 slices of ~128 x 128 pixels), per axial slice of the body (largest tissue component > -500 HU,
holes filled):

* *lung slice*: air-density voxels (-1024..-400 HU) inside the body cover more than
  ``LUNG_SLICE_RATIO`` of its cross-section;
* *head slice*: a body of at most ``HEAD_MAX_AREA_CM2`` whose bone (> 700 HU) is met in most
  directions around its centroid, and the outline that bone draws (gaps bridged) holds more than
  ``HEAD_SLICE_RATIO`` of the cross-section, mostly brain-like (0..80 HU) with little air.

Chest when at least ``MIN_SLICE_FRACTION`` of the sampled slices are lung slices, head when that
many are head slices (and more than lung slices); otherwise abdomen for a trunk-sized
cross-section, else unknown. The content overrules the header only on positive contrary evidence
(lungs in a "head" study, a skull in a "chest" study, a lung-free trunk in a "chest" study); a
missing confirmation (no skull outline found in a "head" study) keeps the header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from radscribe.io.image import Image
from radscribe.knowledge.ontology import ANATOMY, BODY_REGIONS

#: Internal air / body cross-section above which an axial CT slice counts as a lung slice.
LUNG_SLICE_RATIO = 0.15
#: Skull-enclosed area / body cross-section above which an axial CT slice counts as a head slice.
HEAD_SLICE_RATIO = 0.4
#: Fraction of the skull-enclosed area that must be brain-like (0..80 HU).
BRAIN_FRACTION = 0.6
#: Fraction of the directions around the bone's centroid in which bone is met (a skull, not a spine).
SKULL_EDGE_COVERAGE = 0.7
#: A head slice's body cross-section is at most this (cm^2): a head is never trunk-sized.
HEAD_MAX_AREA_CM2 = 400.0
#: Directions in which the skull outline is read.
_RAYS = 72
#: Fraction of the sampled body slices that must qualify for chest / head.
MIN_SLICE_FRACTION = 0.3
#: Median body cross-section (cm^2) above which a CT without lungs or skull counts as abdomen.
TRUNK_AREA_CM2 = 250.0
#: Slices with less body than this (cm^2) are ignored (air above the head, below the feet).
MIN_BODY_AREA_CM2 = 20.0

#: DICOM BodyPartExamined defined terms and common protocol words -> region.
_DICOM_TERMS: dict[str, tuple[str, ...]] = {
    "chest": ("CHEST", "THORAX", "THORACIC", "LUNG", "LUNGS", "PULMONARY", "CTPA", "RIB", "RIBS", "HEART",
              "CARDIAC", "CORONARY", "TSPINE", "THORAXABD"),
    "brain": ("BRAIN", "CEREBRAL", "NEURO", "INTRACRANIAL", "STROKE", "CEREBRUM"),
    "head": ("HEAD", "SKULL", "SINUS", "SINUSES", "FACE", "ORBIT", "ORBITS", "MASTOID", "IAC", "HEADNECK"),
    "abdomen": ("ABDOMEN", "ABD", "ABDOMINAL", "LIVER", "KIDNEY", "KIDNEYS", "RENAL", "PANCREAS", "SPLEEN",
                "ADRENAL", "UROGRAM", "LSPINE", "ABDOMENPELVIS"),
    "pelvis": ("PELVIS", "PELVIC", "HIP", "HIPS", "PROSTATE", "BLADDER", "SACRUM"),
    "extremity": ("EXTREMITY", "KNEE", "ANKLE", "FOOT", "HAND", "WRIST", "ELBOW", "SHOULDER", "FEMUR", "TIBIA",
                  "HUMERUS", "FOREARM", "LEG", "ARM", "FINGER", "TOE"),
}
_HEADER_FIELDS = ("BodyPartExamined", "StudyDescription", "SeriesDescription", "ProtocolName")


@dataclass(frozen=True)
class Recognition:
    """Modality (DICOM code, e.g. CT, MR, CR, OT), body region (one of BODY_REGIONS), the source of
    the decision ('header', 'content', 'header+content', 'none') and the facts used."""

    modality: str
    body_region: str
    recognized_from: str
    evidence: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"modality": self.modality, "body_region": self.body_region,
                "recognized_from": self.recognized_from, "evidence": list(self.evidence)}


def _words(text: str) -> str:
    return " " + re.sub(r"[^A-Z0-9]+", " ", text.upper()).strip() + " "


def _vocabulary() -> list[tuple[str, str]]:
    """(phrase, region) pairs: DICOM terms plus the ontology's anatomy labels and synonyms."""
    out = [(w, region) for region, words in _DICOM_TERMS.items() for w in words]
    for a in ANATOMY.values():
        if a.region in BODY_REGIONS:
            for phrase in (a.label,) + tuple(a.synonyms):
                if len(phrase) > 3:  # skip abbreviations such as 'rul' that collide with other words
                    out.append((_words(phrase).strip(), a.region))
    return out


_VOCAB = _vocabulary()


def header_region(header: dict, modality: str | None = None) -> tuple[str | None, list[str]]:
    """Region named by the header (None when silent) and the evidence for it."""
    evidence: list[str] = []
    for fld in _HEADER_FIELDS:
        value = header.get(fld)
        if not value:
            continue
        text = _words(str(value))
        found = []
        for phrase, region in _VOCAB:
            pos = text.find(f" {phrase} ")
            if pos >= 0:
                found.append((pos, region, phrase))
        if not found:
            continue
        found.sort()
        regions = list(dict.fromkeys(r for _, r, _ in found))
        region = regions[0]
        if region == "head" and (modality or "").upper() == "MR":
            region = "brain"
        extra = f" (also names {', '.join(regions[1:])})" if len(regions) > 1 else ""
        evidence.append(f"header {fld} '{value}' names {region}{extra}")
        return region, evidence
    return None, evidence


def looks_like_hu(array: np.ndarray) -> tuple[bool, str]:
    """Whether intensities look like CT Hounsfield units: air at <= -900 and soft tissue near 0."""
    a = np.asarray(array)
    step = max(1, a.size // 400_000)
    s = a.reshape(-1)[::step].astype(np.float32)
    if s.size == 0:
        return False, "empty image"
    lo, hi = float(s.min()), float(s.max())
    air = float(np.mean(s <= -900))
    soft = float(np.mean((s >= -200) & (s <= 200)))
    ok = -3100 <= lo <= -900 and hi <= 40000 and air >= 0.02 and soft >= 0.05
    return ok, (f"values {lo:.0f}..{hi:.0f}, {air:.0%} at <= -900 (air), {soft:.0%} in -200..200 (soft tissue)")


def _sample(image: Image, max_slices: int = 48, side: int = 128) -> tuple[np.ndarray, float]:
    """Downsampled HU copy (<= max_slices x ~side x ~side) and the area of one of its pixels (mm^2)."""
    z, y, x = image.shape
    idx = np.unique(np.linspace(0, z - 1, min(z, max_slices)).round().astype(int))
    sy, sx = max(1, round(y / side)), max(1, round(x / side))
    a = np.asarray(image.array[idx][:, ::sy, ::sx], dtype=np.float32)
    _, py, px = image.spacing
    return np.maximum(a, -1024.0), float(py * sy * px * sx)


def _is_head_slice(sl: np.ndarray, body: np.ndarray, area: int) -> bool:
    """A bone outline (> 700 HU) around mostly brain-like tissue that fills much of the body.

    The outline is read in polar form around the bone's centroid: in each of ``_RAYS`` directions the
    nearest bone pixel is the inner table; directions without bone (gaps of a real skull on a
    downsampled slice: thin occipital bone, sutures, partial volume) take the radius of their
    neighbours. The bone must be met in most directions (a spine or a single bone is not), and the
    tissue inside the outline, away from the bone, must be mostly 0..80 HU with little air (lungs
    inside ribs fail here). A cavity with holes in its wall encloses nothing when filled, which is
    why a hole-filling test found the skull on 3 of 46 slices of a real head CT.
    """
    bone = body & (sl > 700)
    ys, xs = np.nonzero(bone)
    if ys.size < 8:
        return False
    cy, cx = ys.mean(), xs.mean()
    bins = ((np.arctan2(ys - cy, xs - cx) + np.pi) / (2 * np.pi) * _RAYS).astype(int) % _RAYS
    inner = np.full(_RAYS, np.inf)
    np.minimum.at(inner, bins, np.hypot(ys - cy, xs - cx))
    hit = np.isfinite(inner)
    if hit.mean() < SKULL_EDGE_COVERAGE:
        return False
    k = np.arange(_RAYS)
    inner = np.interp(k, k[hit], inner[hit], period=_RAYS)
    by, bx = np.nonzero(body)
    b = ((np.arctan2(by - cy, bx - cx) + np.pi) / (2 * np.pi) * _RAYS).astype(int) % _RAYS
    inside = np.hypot(by - cy, bx - cx) < inner[b] - 1.5  # a pixel and a half off the inner table
    if inside.sum() / area <= HEAD_SLICE_RATIO:
        return False
    vals = sl[by[inside], bx[inside]]
    brain = float(np.mean((vals >= 0) & (vals <= 80)))
    air = float(np.mean(vals < -400))
    return brain >= BRAIN_FRACTION and air < 0.05


def content_region(image: Image) -> tuple[str, list[str], dict[str, float]]:
    """Region from the voxels of an HU image, the evidence, and the measured figures."""
    a, pix_mm2 = _sample(image)
    n_lung = n_head = n_body = 0
    areas = []
    for sl in a:
        tissue = sl > -500
        lab, n = ndimage.label(tissue)
        if n == 0:
            continue
        sizes = np.bincount(lab.ravel())[1:]
        body = ndimage.binary_fill_holes(lab == (int(np.argmax(sizes)) + 1))
        area = int(body.sum())
        if area * pix_mm2 / 100.0 < MIN_BODY_AREA_CM2:
            continue
        n_body += 1
        areas.append(area * pix_mm2 / 100.0)
        if np.count_nonzero(body & (sl < -400)) / area > LUNG_SLICE_RATIO:
            n_lung += 1
        if area * pix_mm2 / 100.0 <= HEAD_MAX_AREA_CM2 and _is_head_slice(sl, body, area):
            n_head += 1
    stats = {"body_slices": float(n_body), "lung_slice_fraction": n_lung / n_body if n_body else 0.0,
             "head_slice_fraction": n_head / n_body if n_body else 0.0,
             "median_body_area_cm2": float(np.median(areas)) if areas else 0.0}
    if n_body == 0:
        return "unknown", ["no body cross-section found in the content"], stats
    fl, fh, area = stats["lung_slice_fraction"], stats["head_slice_fraction"], stats["median_body_area_cm2"]
    ev = [f"content: {n_lung}/{n_body} sampled body slices hold internal air (-1024..-400 HU) over "
          f"{LUNG_SLICE_RATIO:.0%} of the body cross-section",
          f"content: {n_head}/{n_body} sampled slices show a bone ring (> 700 HU) enclosing brain-density "
          "tissue (0..80 HU)",
          f"content: median body cross-section {area:.0f} cm^2"]
    if fh >= MIN_SLICE_FRACTION and fh > fl:
        return "head", ev, stats
    if fl >= MIN_SLICE_FRACTION:
        return "chest", ev, stats
    if area >= TRUNK_AREA_CM2 and image.spacing_known:
        return "abdomen", ev + ["content: trunk-sized body without lungs or skull -> abdomen"], stats
    return "unknown", ev, stats


def _decide_region(hreg: str | None, creg: str | None, evidence: list[str]) -> str:
    """Header region vs content region. The content overrules the header only on positive contrary
    evidence: lungs or a skull outline found (chest / head), or a trunk-sized body without lungs in
    a study labelled chest. Not finding the skull is no evidence against a head label: the outline
    test can miss (tilted, thin or partly imaged skulls), and a head never looks like anything else."""
    if creg is None:
        return hreg or "unknown"
    if creg in ("chest", "head"):
        if hreg not in (None, "unknown", creg) and not (creg == "head" and hreg == "brain"):
            evidence.append(f"header says {hreg} but the content shows {creg}: trusting the content")
        return creg
    if hreg == "chest":  # creg is abdomen or unknown: a chest CT always shows lungs
        evidence.append(f"header says chest but the content shows no lungs: trusting the content ({creg})")
        return creg
    if hreg in ("head", "brain"):
        evidence.append(f"header says {hreg}; the content neither confirms it (skull outline on too few slices) "
                        "nor contradicts it (no lungs): keeping the header")
        return hreg
    return hreg or creg


def recognize(image: Image, header: dict | None) -> Recognition:
    """Modality and body region of ``image`` from ``header`` (may be empty) and its content."""
    header = dict(header or {})
    evidence: list[str] = []
    used_header = used_content = False

    modality = str(header.get("Modality") or "").upper()
    if modality:
        used_header = True
        evidence.append(f"header Modality {modality}")
    elif image.modality and image.modality.upper() != "OT":
        modality = image.modality.upper()
        used_header = True
        evidence.append(f"file metadata modality {modality}")
    hreg, hev = header_region(header, modality)
    if hreg is not None:
        used_header = True
        evidence += hev

    hu = image.units == "HU"
    if not modality or modality == "OT":
        ok, why = looks_like_hu(image.array)
        if ok and image.spacing_known:
            modality, hu, used_content = "CT", True, True
            evidence.append(f"content looks like CT in HU: {why}")
        elif not modality:
            modality = "OT"

    creg = None
    if modality == "CT":
        if not hu:
            hu, why = looks_like_hu(image.array)
            evidence.append(f"values {'look' if hu else 'do not look'} like HU: {why}")
        if hu:
            creg, cev, _ = content_region(image)
            used_content = True
            evidence += cev

    region = _decide_region(hreg, creg, evidence)
    if region not in BODY_REGIONS:
        region = "unknown"

    source = "header+content" if used_header and used_content else (
        "header" if used_header else ("content" if used_content else "none"))
    return Recognition(modality=modality, body_region=region, recognized_from=source, evidence=tuple(evidence))


def with_recognition(image: Image, rec: Recognition) -> Image:
    """A copy of ``image`` carrying the recognised modality and region; a CT recognised from HU-like
    content (NIfTI, MetaImage, NRRD carry no modality) gets ``units="HU"`` so HU-based steps apply."""
    units = "HU" if rec.modality == "CT" and any("looks like CT in HU" in e or "values look like HU" in e
                                                 for e in rec.evidence) else image.units
    return image.with_array(image.array, modality=rec.modality, units=units,
                            body_part=rec.body_region if rec.body_region != "unknown" else image.body_part)
