"""What ``analyze`` writes for one study: overlays, report.md, optional exports, side files.

Everything here is generic over detectors: the window, the contours and the heatmaps come from
each :class:`radscribe.models.detector.Detection`, never from a detector's name.
"""

from __future__ import annotations

import errno
import json
import os
import warnings
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from radscribe import __version__
from radscribe.errors import OutputExistsError, RadscribeInputError
from radscribe.findings.model import Analysis, Finding, StudyInfo
from radscribe.io.image import Image
from radscribe.report.overlay import COLORS, Box2D, render_overlay, save_png
from radscribe.report.structured import method_lines

DISCLAIMER = ("Generated automatically by radscribe {version}. Not a diagnosis: every finding must be "
              "reviewed by a qualified radiologist.")
#: Files the pipeline itself writes; a detector's side file may not take these names.
RESERVED = ("findings.json", "report.md", "report.fhir.json", "report.sr.dcm", "overlays")
#: Window per body region for overlays when no detector asks for one.
REGION_WINDOW = {"brain": "brain", "head": "brain", "abdomen": "abdomen"}
CONTOUR_COLORS = ((90, 200, 255), (255, 200, 90), (160, 255, 140), (255, 140, 220))
#: Longest temporary/backup sibling suffix :func:`radscribe.io.output.atomic_dir` adds to a name.
_SIBLING_EXTRA = len(".") + len(".tmp-") + 12


def check_output_location(out: Path, overwrite: bool) -> None:
    """Fail before any work when ``out`` cannot become the output folder: it exists (without
    ``overwrite``) or is a file, a parent is a file or not writable, or a name is too long."""
    out = Path(out)
    try:
        _check_output_location(out, overwrite)
    except OSError as exc:  # e.g. ENAMETOOLONG from stat() itself, ELOOP, EACCES on a parent
        raise output_error(out, exc) from exc


def _check_output_location(out: Path, overwrite: bool) -> None:
    anchor = out.absolute().parent
    missing: list[str] = [out.name]
    while not anchor.exists():
        missing.append(anchor.name)
        anchor = anchor.parent
    if not anchor.is_dir():
        raise RadscribeInputError(f"cannot write {out}: {anchor} is a file, not a folder")
    try:
        name_max = os.pathconf(anchor, "PC_NAME_MAX")
        path_max = os.pathconf(anchor, "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    for i, part in enumerate(missing):
        extra = _SIBLING_EXTRA if i == 0 else 0   # the output folder is built in a longer-named sibling
        if len(os.fsencode(part)) + extra > name_max:
            raise RadscribeInputError(f"cannot write {out.parent}/{part[:20]}...: the name is too long for the file "
                                      f"system ({len(os.fsencode(part))} bytes; at most {name_max - extra})")
    if len(os.fsencode(str(out.absolute()))) + _SIBLING_EXTRA + 64 > path_max:
        raise RadscribeInputError(f"cannot write {str(out)[:60]}...: the path is too long for the file system")
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise OutputExistsError(f"output folder {out} exists already; pass --overwrite to replace it")
        if not out.is_dir():
            raise RadscribeInputError(f"output path {out} exists and is not a folder")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise RadscribeInputError(f"cannot write {out}: no permission to create files in {anchor}")


def output_error(out: Path, exc: OSError) -> RadscribeInputError:
    """An OS error at the output boundary as a one-line user error."""
    what = exc.strerror or errno.errorcode.get(exc.errno or 0, type(exc).__name__)
    where = f" ({exc.filename})" if exc.filename else ""
    return RadscribeInputError(f"cannot write output folder {out}: {what}{where}")


def display_slice(image: Image, z: int, window: str = "lung") -> np.ndarray:
    """One slice as uint8 for display: a HU window preset for CT, percentile scaling otherwise."""
    from radscribe.preprocess.intensity import display_uint8

    return display_uint8(image.array[z], image.units, window)


def render_overlays(image: Image, findings: list[Finding], heatmaps: dict[int, np.ndarray],
                    masks: dict[int, np.ndarray], contours: dict[str, np.ndarray], window: str,
                    tmp: Path) -> list[Finding]:
    """One overlay per present finding (its key slice); an overview when there is none. Returns the
    findings with ``artifacts["overlay"]`` set."""
    out: list[Finding] = []
    aspect = image.spacing[1] / image.spacing[2] if image.spacing_known else 1.0
    named = [(m, CONTOUR_COLORS[k % len(CONTOUR_COLORS)]) for k, m in enumerate(contours.values())]

    def outlines(zc: int, extra=()):
        return [(m[zc] if m.ndim == 3 else m, c) for m, c in named] + list(extra)

    for i, f in enumerate(findings):
        if not f.present or f.box_voxel is None:
            out.append(f)
            continue
        z0, y0, x0, z1, y1, x1 = f.box_voxel
        zc = int(round(f.center_voxel[0])) if f.center_voxel else int((z0 + z1 - 1) // 2)
        zc = min(max(zc, 0), image.shape[0] - 1)
        size = f" {f.long_axis:.0f} {f.size_unit}" if f.long_axis else ""
        color = COLORS[i % len(COLORS)]
        box = Box2D(y0, x0, y1, x1, label=f"{i + 1} {f.kind.replace('_', ' ')}{size}", color=color)
        own = []
        if i in masks:
            m = masks[i]
            own = [(m[zc] if m.ndim == 3 else m, color)]
        hm = heatmaps.get(i)
        if hm is not None and hm.ndim == 3:
            hm = hm[zc]
        img = render_overlay(display_slice(image, zc, window), [box], outlines(zc, own), heatmap=hm,
                             aspect=aspect, caption=f"slice {zc}")
        rel = f"overlays/finding_{i + 1:02d}_{f.kind}.png"
        save_png(img, tmp / rel)
        out.append(replace(f, artifacts={**f.artifacts, "overlay": rel}))
    if not any(f.present and f.box_voxel is not None for f in findings):
        zc = image.shape[0] // 2
        img = render_overlay(display_slice(image, zc, window), [], outlines(zc), aspect=aspect,
                             caption=f"key slice {zc}: no finding")
        save_png(img, tmp / "overlays" / "overview.png")
    return out


def study_info(loaded: Any, recognition: Any) -> StudyInfo:
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


def report_markdown(analysis: Analysis) -> str:
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
    # model detail (detector, confidence, attention) stays out of the prose: it is here and in findings.json
    body += ["", "## Method", ""] + [f"- {line}" for line in method_lines(analysis.findings, analysis.detectors_run)]
    if s.notes:
        body += ["", "## Technical notes", ""] + [f"- {n}" for n in s.notes]
    body += ["", f"_{DISCLAIMER.format(version=__version__)}_", ""]
    return "\n".join(head + body)


def write_sr(analysis: Analysis, source: Path, uid_hash: str | None, path: Path, evidence=()) -> bool:
    """DICOM SR beside the JSON, for DICOM inputs (it copies the source's patient/study module).
    ``evidence``: the series' headers as the loader read them; re-read from ``source`` when empty.
    False when the source series cannot be found again (nothing is written)."""
    from radscribe.report.sr import build_sr, series_evidence

    evidence = list(evidence) or series_evidence(source, uid_hash)
    if not evidence:
        return False
    with warnings.catch_warnings():  # highdicom warns about source names it would not have written
        warnings.simplefilter("ignore", UserWarning)
        build_sr(analysis, evidence).save_as(path, enforce_file_format=True)
    return True


def fhir_json(analysis: Analysis, markdown: str) -> str:
    from radscribe.report.fhir import to_fhir

    return json.dumps(to_fhir(analysis, markdown), indent=1)


def side_file_path(tmp: Path, name: str, detector: str) -> Path:
    """Where side file ``name`` of ``detector`` goes inside the output folder (validated)."""
    rel = PurePosixPath(name)
    if rel.is_absolute() or not rel.parts or ".." in rel.parts or rel.parts[0] in RESERVED:
        raise ValueError(f"detector {detector!r}: side file name {name!r} must be a relative path "
                         f"outside {', '.join(RESERVED)}")
    return tmp.joinpath(*rel.parts)


def write_side_file(path: Path, content: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, (bytes, bytearray)):
        path.write_bytes(bytes(content))
    else:
        path.write_text(json.dumps(content, indent=1))


def one_line(exc: BaseException) -> str:
    """``Type: first line`` of an exception, for a note."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else 'no message'}"
