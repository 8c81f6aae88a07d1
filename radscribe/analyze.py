"""``radscribe analyze``: one study in, findings.json + report.md + overlays out.

read -> recognize -> route -> detect -> describe -> write. The output folder is built in a
temporary sibling and moved into place only when everything is written, so a failure leaves
nothing behind and an existing folder is never touched without ``--overwrite``.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from radscribe import __version__
from radscribe.errors import RadscribeInputError
from radscribe.findings.model import Analysis, Finding, Report, StudyInfo
from radscribe.findings.schema import validate_findings
from radscribe.io.image import Image
from radscribe.io.output import atomic_dir, check_output_dir
from radscribe.report.fhir import to_fhir
from radscribe.report.generate import GENERATORS
from radscribe.report.overlay import COLORS, Box2D, render_overlay, save_png
from radscribe.report.structured import write_structured

NODULE_DETECTOR = "lung-nodule-classic"
DISCLAIMER = ("Generated automatically by radscribe {version}. Not a diagnosis: every finding must be "
              "reviewed by a qualified radiologist.")


@dataclass
class _Stage:
    """Collects wall times per stage."""

    timings: dict[str, float]

    def run(self, name: str, fn: Callable[..., Any], *a: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t


@dataclass
class _Detected:
    findings: list[Finding]
    detectors_run: list[str]
    notes: list[str]
    heatmaps: dict[int, np.ndarray]          # finding index -> heatmap (y, x)
    lung_mask: np.ndarray | None = None
    candidates: list[dict] | None = None
    #: (modality, region, recognized_from) when routing recognised more than the header did.
    recognized: tuple[str, str, str] | None = None


def display_slice(image: Image, z: int, window: str = "lung") -> np.ndarray:
    """One slice as uint8 for display: a HU window preset for CT, percentile scaling otherwise."""
    from radscribe.preprocess.intensity import display_uint8

    return display_uint8(image.array[z], image.units, window)


def _detect_nodules(image: Image, stage: _Stage, det: _Detected) -> None:
    from radscribe.models.nodule_candidates import detect_nodules
    from radscribe.preprocess.lung import segment_lungs

    lungs = stage.run("lung_segmentation", segment_lungs, image)
    result = stage.run("nodule_detection", detect_nodules, image, lungs)
    det.detectors_run.append(NODULE_DETECTOR)
    det.lung_mask = lungs.mask
    det.candidates = list(result.candidates)
    det.notes.extend(lungs.notes)
    det.findings.extend(result.findings)


def _run_classifiers(image: Image, recognition: Any, wanted: set[str], stage: _Stage, det: _Detected) -> None:
    """Run the learned models that apply; ``wanted`` empty means every applicable one."""
    try:
        from radscribe.models.classify import classify_image
        from radscribe.models.registry import load_model
        from radscribe.models.routing import decide
    except ImportError as exc:  # the learned models are optional at run time
        det.notes.append(f"Learned classifiers unavailable ({exc.name} not importable).")
        return
    decision = stage.run("routing", decide, image, recognition)
    names, reasons = list(decision.models), list(decision.notes) + list(decision.skipped)
    if recognition.recognized_from == "none" and decision.decided_from != "none" and decision.region:
        # a bare PNG/JPEG: the content-based domain classifier named what it is
        det.recognized = (decision.modality or recognition.modality, decision.region, decision.decided_from)
    if wanted:
        for n in sorted(wanted - set(names)):
            det.notes.append(f"Model {n} was requested but does not apply to this study; it was not run.")
        names = [n for n in names if n in wanted]
    det.notes.extend(reasons)
    for name in names:
        try:
            loaded = stage.run("load_model", load_model, name)
        except RadscribeInputError as exc:  # e.g. a model whose weights are not installed
            det.notes.append(f"Model {name} applies but could not be loaded, so it was not run: {exc}")
            continue
        res = stage.run(f"classify:{name}", classify_image, loaded, image)
        det.detectors_run.append(name)
        for f in res.findings:
            if f.present and f.kind in res.heatmaps:
                det.heatmaps[len(det.findings)] = res.heatmaps[f.kind]
            det.findings.append(f)


def _study_info(loaded: Any, recognition: Any) -> StudyInfo:
    image: Image = loaded.image
    chosen = next((s for s in loaded.series if getattr(s, "chosen", False)), None)
    return StudyInfo(
        source_format=image.source_format or "unknown",
        modality=recognition.modality,
        body_region=recognition.body_region,
        shape=image.shape,
        spacing_mm=tuple(float(s) for s in image.spacing) if image.spacing_known else None,
        recognized_from=recognition.recognized_from,
        series_description=loaded.header.get("SeriesDescription") or None,
        series_uid_hash=getattr(chosen, "uid_hash", None),
        n_series_found=max(1, len(loaded.series)),
        notes=tuple(loaded.notes) + tuple(f"Recognition: {e}" for e in recognition.evidence),
    )


def _write_report(findings: list[Finding], study: StudyInfo, det: _Detected, writer: str) -> Report:
    structured = write_structured(findings, study, region=study.body_region, modality=study.modality,
                                  detectors_run=det.detectors_run)
    if writer == "structured" or not det.detectors_run:
        return structured
    from radscribe.report.consistency import guard
    from radscribe.report.generate import make_generator

    gen = make_generator(writer)
    text = gen.generate([f for f in findings if f.present])
    checked = guard(text, findings)
    return Report(findings=checked.text, impression=structured.impression,
                  writer=f"{writer} (+guard: {checked.n_corrections} corrections)")


def _overlays(image: Image, det: _Detected, region: str, tmp: Path) -> list[Finding]:
    """One overlay per present finding (its key slice); an overview when there is none."""
    out: list[Finding] = []
    window = "lung" if NODULE_DETECTOR in det.detectors_run else {
        "brain": "brain", "head": "brain", "abdomen": "abdomen"}.get(region, "mediastinum")
    aspect = image.spacing[1] / image.spacing[2] if image.spacing_known else 1.0
    for i, f in enumerate(det.findings):
        if not f.present or f.box_voxel is None:
            out.append(f)
            continue
        z0, y0, x0, z1, y1, x1 = f.box_voxel
        zc = int(round(f.center_voxel[0])) if f.center_voxel else int((z0 + z1 - 1) // 2)
        zc = min(max(zc, 0), image.shape[0] - 1)
        size = f" {f.long_axis:.0f} {f.size_unit}" if f.long_axis else ""
        box = Box2D(y0, x0, y1, x1, label=f"{i + 1} {f.kind.replace('_', ' ')}{size}", color=COLORS[i % len(COLORS)])
        contours = []
        if det.lung_mask is not None:
            contours.append((det.lung_mask[zc], (90, 200, 255)))
        img = render_overlay(display_slice(image, zc, window), [box], contours, heatmap=det.heatmaps.get(i),
                             aspect=aspect, caption=f"slice {zc}")
        rel = f"overlays/finding_{i + 1:02d}_{f.kind}.png"
        save_png(img, tmp / rel)
        out.append(replace(f, artifacts={**f.artifacts, "overlay": rel}))
    if not any(f.present and f.box_voxel is not None for f in det.findings):
        zc = image.shape[0] // 2
        contours = [(det.lung_mask[zc], (90, 200, 255))] if det.lung_mask is not None else []
        img = render_overlay(display_slice(image, zc, window), [], contours, aspect=aspect,
                             caption=f"key slice {zc}: no finding")
        save_png(img, tmp / "overlays" / "overview.png")
    return out


def _write_sr(analysis: Analysis, source: Path, uid_hash: str | None, path: Path) -> None:
    """DICOM SR beside the JSON, for DICOM inputs (it copies the source's patient/study module)."""
    from radscribe.report.sr import build_sr, series_evidence

    evidence = series_evidence(source, uid_hash)
    if evidence:
        with warnings.catch_warnings():  # highdicom warns about source names it would not have written
            warnings.simplefilter("ignore", UserWarning)
            build_sr(analysis, evidence).save_as(path, enforce_file_format=True)


def _report_markdown(analysis: Analysis) -> str:
    s = analysis.study
    head = [
        "# radscribe report",
        "",
        f"- Study: {s.modality} {s.body_region} ({s.source_format}, {' x '.join(map(str, s.shape))} voxels"
        + (f", spacing {' x '.join(f'{v:.3g}' for v in s.spacing_mm)} mm" if s.spacing_mm else "") + ")",
        f"- Recognized from: {s.recognized_from}",
        f"- Detectors run: {', '.join(analysis.detectors_run) or 'none applicable'}",
    ]
    if s.series_description:
        head.append(f"- Series: {s.series_description}")
    rep = analysis.report
    body = ["", "## Findings", "", rep.findings.strip(), "", "## Impression", "", rep.impression.strip()]
    if s.notes:
        body += ["", "## Technical notes", ""] + [f"- {n}" for n in s.notes]
    body += ["", f"_{DISCLAIMER.format(version=__version__)}_", ""]
    return "\n".join(head + body)


def analyze(path: Path, out: Path, *, overwrite: bool = False, series_uid: str | None = None,
            writer: str = "structured", models: str = "auto") -> Analysis:
    """Analyse one study and write the output folder. Raises RadscribeInputError on bad input."""
    from radscribe.io.loader import load_study
    from radscribe.preprocess.recognize import recognize, with_recognition

    out = Path(out)
    check_output_dir(out, overwrite)
    if writer not in GENERATORS:  # fail before any work; the registry is the one list of writer names
        raise RadscribeInputError(f"unknown report writer {writer!r}; use one of {', '.join(GENERATORS)}")
    t_start = time.perf_counter()
    stage = _Stage({})
    loaded = stage.run("read", load_study, Path(path), series_uid)
    image: Image = loaded.image
    recognition = stage.run("recognize", recognize, image, loaded.header)
    image = with_recognition(image, recognition)  # e.g. a NIfTI chest CT recognised as CT gets HU units
    det = _Detected([], [], [], {})

    auto = models in ("auto", "")
    wanted = set() if auto or models == "none" else {m.strip() for m in models.split(",") if m.strip()}
    is_chest_ct = (recognition.modality == "CT" and recognition.body_region == "chest"
                   and image.is_volume and image.units == "HU")
    if NODULE_DETECTOR in wanted and not is_chest_ct:
        det.notes.append(f"{NODULE_DETECTOR} was requested but needs a chest CT volume in HU; this study is "
                         f"{recognition.modality} {recognition.body_region}, so it was not run.")
    elif is_chest_ct and (auto or NODULE_DETECTOR in wanted):
        _detect_nodules(image, stage, det)
    classifiers = wanted - {NODULE_DETECTOR}
    if auto or classifiers:
        _run_classifiers(image, recognition, classifiers, stage, det)

    study = _study_info(loaded, recognition)
    if det.recognized is not None:
        modality, region, source = det.recognized
        study = replace(study, modality=modality, body_region=region, recognized_from=source)
    if det.notes:
        study = replace(study, notes=study.notes + tuple(det.notes))

    with atomic_dir(out, overwrite=overwrite) as tmp:
        findings = stage.run("overlays", _overlays, image, det, study.body_region, tmp)
        report = stage.run("report", _write_report, findings, study, det, writer)
        stage.timings["total"] = time.perf_counter() - t_start
        analysis = Analysis(study=study, findings=tuple(findings), report=report,
                            detectors_run=tuple(det.detectors_run), timings=dict(stage.timings),
                            radscribe_version=__version__)
        doc = analysis.to_dict()
        validate_findings(doc)
        (tmp / "findings.json").write_text(json.dumps(doc, indent=2))
        markdown = _report_markdown(analysis)
        (tmp / "report.md").write_text(markdown)
        (tmp / "report.fhir.json").write_text(json.dumps(to_fhir(analysis, markdown), indent=1))
        if image.source_format.startswith("dicom"):
            stage.run("dicom_sr", _write_sr, analysis, Path(path), study.series_uid_hash, tmp / "report.sr.dcm")
        if det.candidates is not None:
            (tmp / "candidates.json").write_text(json.dumps(_jsonable(det.candidates), indent=1))
    return analysis


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else round(float(x), 5)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    return x


def cli_analyze(args: Any) -> int:
    analysis = analyze(args.path, args.out, overwrite=args.overwrite, series_uid=args.series,
                       writer=args.writer, models=args.models)
    n = sum(f.present for f in analysis.findings)
    print(f"{analysis.study.modality} {analysis.study.body_region}: {n} finding(s) "
          f"by {', '.join(analysis.detectors_run) or 'no applicable detector'} "
          f"in {analysis.timings.get('total', 0):.2f} s", file=sys.stderr)
    print(f"wrote {args.out}/findings.json, {args.out}/report.md and {args.out}/overlays/")
    return 0
