"""Which image classifiers apply to a study: a model never runs outside its modality, region and dims.

Decision per registered model (see :func:`route`):

* **dims** - 2D models (``cxr-pneumonia``, ``mri-brain-tumor``, ``ct-kidney``) read one 2D image
  (a radiograph, or a slice as the dataset authors chose and windowed it). A 3D volume is *not*
  sliced for them: which slice, plane and window would be our guess, not what they were trained
  on. ``ct-adrenal3d`` reads only volumes shaped like an AdrenalMNIST3D sample (a cube of
  16-64 voxels per side around one adrenal gland, ~1 mm voxels); a whole CT volume is refused
  because radscribe has no adrenal segmentation to crop it with.
* **modality and region** - from the header via ``recognize()`` when it is trustworthy (a real
  Modality and a known body region). For a 2D image the content-based domain classifier
  (:mod:`radscribe.models.domain`) decides when the header is missing or partial, and a confident
  (>= ``CONTRADICTION_CONFIDENCE``) content verdict of another domain blocks the models the header
  alone would allow (e.g. a JPEG saved with a wrong DICOM wrapper).

X-ray modality codes CR, DX, DR, RG and XR are treated alike ("CR"); MR brain models accept the
regions brain and head.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

from radscribe.io.image import Image

XRAY_CODES = ("CR", "DX", "DR", "RG", "XR", "PX")
#: A content verdict at least this confident overrides a conflicting header.
CONTRADICTION_CONFIDENCE = 0.9
#: AdrenalMNIST3D-like volume: every side within these bounds (voxels), and nearly cubic.
ADRENAL_SIDE_RANGE = (16, 64)
ADRENAL_MAX_ASPECT = 1.5


def _norm_modality(m: str | None) -> str | None:
    m = (m or "").upper()
    if not m or m in ("OT", "UNKNOWN", "NONE"):
        return None
    return "CR" if m in XRAY_CODES else m


def _norm_region(r: str | None) -> str | None:
    r = (r or "").lower()
    return None if r in ("", "unknown", "none") else r


def _region_ok(spec_region: str, region: str | None) -> bool:
    if region is None:
        return False
    if spec_region == "brain":
        return region in ("brain", "head")
    return region == spec_region


@dataclass(frozen=True)
class RoutingDecision:
    """The models to run, why each other model was not run, and what the decision rested on."""

    models: tuple[str, ...]
    skipped: tuple[str, ...]
    modality: str | None
    region: str | None
    decided_from: str               # "header", "content", "header+content" or "none"
    domain: Any = None              # DomainPrediction when the domain classifier ran
    notes: tuple[str, ...] = field(default_factory=tuple)


def _adrenal_like(shape: tuple[int, int, int]) -> bool:
    lo, hi = ADRENAL_SIDE_RANGE
    return all(lo <= s <= hi for s in shape) and max(shape) / min(shape) <= ADRENAL_MAX_ASPECT


def spec_reason(s: Any, image: Image, modality: str | None, region: str | None,
                header_modality: str | None) -> str | None:
    """None when spec ``s`` reads ``image`` whose established ``modality``/``region`` (None = not
    established) are as given, else the human reason it does not (see module doc)."""
    volume = image.is_volume
    if s.dims == 2 and volume:
        return (f"{s.name} reads single 2D images, not a {image.shape[0]}-slice volume "
                "(radscribe does not pick a slice for it)")
    if s.dims == 3 and not volume:
        return f"{s.name} reads 3D volumes; this is a 2D image"
    if s.dims == 3 and not _adrenal_like(image.shape):
        return (f"{s.name} reads an AdrenalMNIST3D-like crop around one adrenal gland "
                f"({ADRENAL_SIDE_RANGE[0]}-{ADRENAL_SIDE_RANGE[1]} voxels per side); this volume is "
                f"{'x'.join(map(str, image.shape))} and radscribe has no adrenal segmentation to crop it")
    if s.dims == 3 and header_modality not in (None, "CT"):
        return f"{s.name} reads CT; the header says {header_modality}"
    if s.dims == 3:
        return None  # an adrenal-sized CT (or header-less) crop: the model's own input form
    if modality is None or region is None:
        return f"{s.name} needs {s.modality} {s.body_region}; modality/region of this image are not established"
    if modality != s.modality:
        return f"{s.name} reads {s.modality} ({s.body_region}); this image is {modality}"
    if not _region_ok(s.body_region, region):
        return f"{s.name} reads {s.modality} of the {s.body_region}; this image shows the {region}"
    return None


def decide(image: Image, recognition: Any = None, *, use_content: bool = True,
           domain_weights=None) -> RoutingDecision:
    """Full routing decision for ``image`` (see module doc). ``recognition`` is a
    :class:`radscribe.preprocess.recognize.Recognition` or None (then only the image's own
    modality/body_part and its content are used)."""
    from radscribe.models.registry import list_specs

    if recognition is not None:
        h_mod = _norm_modality(getattr(recognition, "modality", None))
        h_reg = _norm_region(getattr(recognition, "body_region", None))
        src = str(getattr(recognition, "recognized_from", "none") or "none")
    else:
        h_mod, h_reg, src = _norm_modality(image.modality), _norm_region(image.body_part), "header"
        if h_mod is None and h_reg is None:
            src = "none"
    notes: list[str] = []
    specs = list_specs()
    chosen: list[str] = []
    skipped: list[str] = []
    volume = image.is_volume

    modality, region, decided_from, dom = h_mod, h_reg, (src if (h_mod or h_reg) else "none"), None
    if not volume and use_content:
        from radscribe.models.domain import DOMAIN_TO_MODALITY_REGION, classify_domain

        dom = classify_domain(image, domain_weights)
        mr = DOMAIN_TO_MODALITY_REGION.get(dom.domain)
        what = f"content looks like {dom.domain.replace('_', ' ')} (p={dom.confidence:.2f})"
        if h_mod and h_reg:
            if mr and mr != (h_mod, h_reg) and dom.confidence >= CONTRADICTION_CONFIDENCE \
                    and not (mr[0] == h_mod and mr[1] == "brain" and h_reg == "head"):
                notes.append(f"header says {h_mod} {h_reg} but {what}: no classifier is run on a contradiction")
                modality, region, decided_from = None, None, "header+content"
            else:
                decided_from = "header" if src == "header" else "header+content"
        elif mr is None:
            notes.append(f"{what.replace('looks like other', 'matches no known domain')}"
                         + (f" (raw guess {dom.raw_domain.replace('_', ' ')})" if dom.domain == "other" else ""))
            modality, region, decided_from = h_mod, h_reg, "header+content" if (h_mod or h_reg) else "content"
            if not h_mod or not h_reg:  # a partial header plus an abstaining classifier: nothing is known enough
                modality = region = None
        elif (h_mod and mr[0] != h_mod) or (h_reg and not (mr[1] == h_reg or (mr[1] == "brain" and h_reg == "head"))):
            notes.append(f"header says {h_mod or '?'} {h_reg or '?'} but {what}: no classifier is run on a contradiction")
            modality, region, decided_from = None, None, "header+content"
        else:
            modality, region = mr
            decided_from = "header+content" if (h_mod or h_reg) else "content"
            notes.append(what)
    elif not volume and not (h_mod and h_reg):
        modality = region = None  # 2D, no content check and no full header: nothing can be trusted

    for s in specs:
        why = spec_reason(s, image, modality, region, h_mod)
        if why is None:
            chosen.append(s.name)
        else:
            skipped.append(why)
    return RoutingDecision(tuple(chosen), tuple(skipped), modality, region, decided_from, dom, tuple(notes))


_CACHE = threading.local()


def decide_cached(image: Image, recognition: Any = None) -> RoutingDecision:
    """:func:`decide`, computed once per (image, recognition) and thread: every classifier's
    ``applies`` asks for the same decision, and the domain classifier then runs once per study."""
    last = getattr(_CACHE, "last", None)
    if last is not None and last[0]() is image and last[1] == recognition:
        return last[2]
    d = decide(image, recognition)
    _CACHE.last = (weakref.ref(image), recognition, d)
    return d


def cached_decision(image: Image) -> tuple[Any, RoutingDecision] | None:
    """(recognition, decision) that :func:`decide_cached` last made for this very image, else None."""
    last = getattr(_CACHE, "last", None)
    return (last[1], last[2]) if last is not None and last[0]() is image else None


def route(image: Image, recognition: Any = None) -> tuple[list[str], list[str]]:
    """(models to run, human reasons why the others were not run); see :func:`decide`."""
    d = decide(image, recognition)
    return list(d.models), list(d.notes) + list(d.skipped)
