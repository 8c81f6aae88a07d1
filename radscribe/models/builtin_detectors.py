"""The built-in detectors behind :mod:`radscribe.models.detector`'s contract, and their registry entries.

* :class:`ClassicNoduleDetector` - lung segmentation + classical two-stage nodule detection
  (:mod:`radscribe.preprocess.lung`, :mod:`radscribe.models.nodule_candidates`) on a chest CT volume
  in HU;
* :class:`ClassifierDetector` - one per registered image classifier
  (:mod:`radscribe.models.registry`), routed by :mod:`radscribe.models.routing` and run by
  :func:`radscribe.models.classify.classify_image`. Weights load on the first ``detect`` and stay
  loaded for the life of the object.

Building either costs nothing (no torch import, no weights read).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from radscribe.io.image import Image
from radscribe.models import nodule_candidates, routing
from radscribe.models.detector import Detection, register_detector
from radscribe.models.registry import ModelSpec, list_specs


def jsonable(x: Any) -> Any:
    """Numbers, arrays and containers -> plain JSON values (non-finite floats become None)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else round(float(x), 5)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    return x


def run_lung_lesions(image: Image, rules: dict[str, float] | None = None):
    """Lung segmentation (with lesion repair), masses, then nodules outside the masses, on a chest CT in HU.

    ``rules`` override :data:`radscribe.models.nodule_candidates.RULES`. Returns (LungSegmentation,
    MassResult, NoduleResult, (seconds per stage)); the benchmark calls this too.
    """
    from radscribe.models.lung_mass import detect_masses
    from radscribe.preprocess.lung import segment_lungs

    t0 = time.perf_counter()
    lungs = segment_lungs(image)
    t1 = time.perf_counter()
    masses = detect_masses(image, lungs)
    t2 = time.perf_counter()
    exclude = np.logical_or.reduce(masses.masks) if masses.masks else None
    result = nodule_candidates.detect_nodules(image, lungs, rules=rules, exclude=exclude)
    t3 = time.perf_counter()
    return lungs, masses, result, (t1 - t0, t2 - t1, t3 - t2)


#: Slice spacing (mm) above which small nodules can fall between slices.
MAX_SLICE_SPACING_MM = 5.0


def sensitivity_notes(image: Image) -> tuple[str, ...]:
    """Notes on reduced sensitivity: slices further apart than :data:`MAX_SLICE_SPACING_MM`, missing slices."""
    notes = []
    sz = float(image.spacing[0])
    if sz > MAX_SLICE_SPACING_MM:
        notes.append(f"slice spacing {sz:.1f} mm > {MAX_SLICE_SPACING_MM:.0f} mm: nodules smaller than about "
                     f"{2 * sz:.0f} mm may be missed and sizes along z are coarse (reduced sensitivity)")
    missing = image.meta.get("missing_slices") if isinstance(image.meta, dict) else None
    if missing:
        n = missing if isinstance(missing, int) else len(missing)
        notes.append(f"{n} missing slice position(s) were interpolated: a nodule there may be missed or "
                     "mis-sized (reduced sensitivity)")
    return tuple(notes)


class ClassicNoduleDetector:
    """Lung nodules on chest CT without learning; every candidate goes to ``candidates.json``."""

    name = nodule_candidates.DETECTOR
    kinds = ("nodule", "mass")
    description = ("chest CT volume in HU: lung segmentation with juxta-pleural / juxta-mediastinal lesion "
                   "repair, lung masses > 30 mm and classical two-stage nodule candidates (no learning), "
                   "Fleischner 2017 follow-up in the report")

    def applies(self, image: Image, recognition: Any) -> str | None:
        modality = getattr(recognition, "modality", None) or image.modality
        region = getattr(recognition, "body_region", None) or image.body_part
        if modality == "CT" and region == "chest" and image.is_volume and image.units == "HU":
            return None
        form = f"a {image.shape[0]}-slice volume" if image.is_volume else "a 2D image"
        return (f"{self.name} needs a chest CT volume in HU; this study is {modality or '?'} {region or '?'} "
                f"({form}{', not in HU' if image.units != 'HU' else ''})")

    _fpr: Any = None

    def _fpr_model(self) -> Any:
        """The learned false-positive reducer when its weights are installed (None otherwise); corrupt or
        mismatched weights raise RadscribeInputError, so the detector is reported as not run."""
        from radscribe.models.nodule_fpr import WEIGHTS_DIR, FPRModel

        if self._fpr is None and (WEIGHTS_DIR / "config.json").is_file():
            self._fpr = FPRModel.load(WEIGHTS_DIR)
        return self._fpr

    def _score_nodules(self, image: Image, nodules: tuple) -> tuple[tuple, float]:
        """Each kept nodule's confidence becomes the reducer's calibrated probability (the heuristic score is kept
        in ``features``). The kept set itself stays the rules' one (docs/parts/nodule_fpr.md says why)."""
        from dataclasses import replace

        model = self._fpr_model()
        if model is None or not nodules:
            return nodules, 0.0
        t = time.perf_counter()
        p = model.score(image, np.array([f.center_voxel for f in nodules], float))
        out = tuple(replace(f, confidence=round(float(pi), 4), confidence_type="calibrated_probability",
                            features={**f.features, "heuristic_confidence": f.confidence, "fpr_probability": float(pi),
                                      "fpr_threshold": model.threshold})
                    for f, pi in zip(nodules, p))
        return out, time.perf_counter() - t

    def detect(self, image: Image) -> Detection:
        lungs, masses, result, (t1, t2, t3) = run_lung_lesions(image)
        nodules, t4 = self._score_nodules(image, tuple(result.findings))
        findings = tuple(masses.findings) + nodules
        return Detection(findings=findings, masks=dict(enumerate(masses.masks)), contours={"lungs": lungs.mask},
                         side_files={"candidates.json": jsonable(list(result.candidates)),
                                     "mass_candidates.json": jsonable(list(masses.candidates))},
                         notes=tuple(lungs.notes) + sensitivity_notes(image), display_window="lung",
                         timings={"lung_segmentation": t1, "mass_detection": t2, "nodule_detection": t3,
                                  "nodule_fpr": t4})


class ClassifierDetector:
    """One registered whole-image classifier (calibrated verdict + Grad-CAM box) as a detector."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self.name = spec.name
        self.kinds = spec.finding_labels
        self._loaded = None

    def load(self) -> Any:
        """The :class:`radscribe.models.registry.LoadedModel`, read once (ConfigError when missing)."""
        if self._loaded is None:
            from radscribe.models.registry import load_model

            self._loaded = load_model(self.name, self.spec.weights_dir)
        return self._loaded

    def applies(self, image: Image, recognition: Any) -> str | None:
        d = routing.decide_cached(image, recognition)
        if self.name in d.models:
            return None
        mine = next((r for r in d.skipped if r.startswith(self.name + " ")), f"{self.name} does not apply")
        if d.notes and (d.modality is None or d.region is None):  # the content check is why: say what it saw
            return f"{mine} ({'; '.join(d.notes)})"
        return mine

    def detect(self, image: Image) -> Detection:
        from radscribe.models.classify import classify_image

        t0 = time.perf_counter()
        loaded = self.load()
        t1 = time.perf_counter()
        res = classify_image(loaded, image)
        heatmaps = {i: res.heatmaps[f.kind] for i, f in enumerate(res.findings)
                    if f.present and f.kind in res.heatmaps}
        notes: tuple[str, ...] = ()
        recognized = None
        cached = routing.cached_decision(image)  # the decision applies() made for this image, if any
        if cached is not None:
            recognition, d = cached
            notes = d.notes
            if getattr(recognition, "recognized_from", "none") in (None, "none") and d.decided_from != "none" \
                    and d.region:  # a bare PNG/JPEG: the content-based domain classifier named what it is
                recognized = (d.modality or getattr(recognition, "modality", None) or "OT", d.region, d.decided_from)
        timings = {"load_model": t1 - t0, f"classify:{self.name}": time.perf_counter() - t1}
        return Detection(findings=tuple(res.findings), heatmaps=heatmaps, notes=notes, timings=timings,
                         recognized=recognized)


def _classifier_factory(spec: ModelSpec):
    def factory() -> ClassifierDetector:
        return ClassifierDetector(spec)
    return factory


register_detector(ClassicNoduleDetector.name, ClassicNoduleDetector)
for _spec in list_specs():
    register_detector(_spec.name, _classifier_factory(_spec))


def _brain_seg_factory():
    """Imported on first use: the segmentation module pulls in MONAI's networks."""
    from radscribe.models.brain_seg import BrainTumourSegDetector

    return BrainTumourSegDetector()


register_detector("mri-brain-tumor-seg", _brain_seg_factory)

from radscribe.models import ct_slice as _ct_slice  # noqa: E402,F401  (registers ct-chest-slice)
