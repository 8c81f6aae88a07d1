"""``radscribe analyze``: one study in, findings.json + report.md + overlays out.

read -> recognize -> for every registered detector: applies? detect -> describe -> write. The loop
knows no detector by name: what a detector found, drew and wants written travels in its
:class:`radscribe.models.detector.Detection`.

:class:`Analyzer` is a session: it builds each detector and report writer once, on first use, and
keeps them (with their loaded weights) for every later study, as a batch run or the HTTP service
needs. :func:`analyze` is the one-off form.

The output folder is built in a temporary sibling and moved into place only when everything is
written, so a failure leaves nothing behind and an existing folder is never touched without
``--overwrite``. Optional outputs (DICOM SR, FHIR) never sink a study: when one fails, the study is
written without it and a technical note says why.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from radscribe import __version__
from radscribe.errors import RadscribeInputError
from radscribe.findings.model import Analysis, Finding, Report, StudyInfo
from radscribe.findings.schema import validate_findings
from radscribe.io.image import Image
from radscribe.io.output import atomic_dir
from radscribe.models.detector import DETECTORS, Detection, Detector, get_detector, parse_models
from radscribe.models.nodule_candidates import DETECTOR as _NODULE_NAME
from radscribe.pipeline import outputs
from radscribe.pipeline.layers import write_layers
from radscribe.report.generate import GENERATORS
from radscribe.report.seg import write_seg_for_study
from radscribe.report.structured import write_structured

#: Kept for callers written before the registry (radscribe.serve); the name comes from the detector.
NODULE_DETECTOR = _NODULE_NAME
DISCLAIMER = outputs.DISCLAIMER
display_slice = outputs.display_slice


def check_writer(writer: str) -> str:
    if writer not in GENERATORS:  # the registry is the one list of writer names
        raise RadscribeInputError(f"unknown report writer {writer!r}; use one of {', '.join(GENERATORS)}")
    return writer


@dataclass
class _Run:
    """What the detectors of one study produced, merged (finding indices are global)."""

    findings: list[Finding] = field(default_factory=list)
    detectors_run: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    heatmaps: dict[int, np.ndarray] = field(default_factory=dict)
    masks: dict[int, np.ndarray] = field(default_factory=dict)
    contours: dict[str, np.ndarray] = field(default_factory=dict)
    side_files: dict[str, tuple[str, Any]] = field(default_factory=dict)   # name -> (detector, content)
    timings: dict[str, float] = field(default_factory=dict)
    recognized: tuple[str, str, str] | None = None
    window: str | None = None
    evidence: tuple = ()   # the analysed series' DICOM headers, for the SR only (they carry identifiers)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def time(self, key: str, seconds: float) -> None:
        self.timings[key] = self.timings.get(key, 0.0) + seconds

    def add(self, det: Detector, d: Detection) -> None:
        unknown = sorted({f.kind for f in d.findings} - set(det.kinds))
        if unknown:
            raise TypeError(f"detector {det.name!r} reported kinds {unknown} outside its declared kinds {det.kinds}")
        base = len(self.findings)
        self.findings.extend(d.findings)
        self.detectors_run.append(det.name)
        self.heatmaps.update({base + i: h for i, h in d.heatmaps.items()})
        self.masks.update({base + i: m for i, m in d.masks.items()})
        self.contours.update(d.contours)
        for name, content in d.side_files.items():
            if name in self.side_files:
                raise ValueError(f"detectors {self.side_files[name][0]!r} and {det.name!r} both write {name}")
            self.side_files[name] = (det.name, content)
        for n in d.notes:
            self.note(n)
        for k, v in d.timings.items():
            self.time(k, v)
        self.recognized = self.recognized or d.recognized
        self.window = self.window or d.display_window


class Analyzer:
    """A session: detectors and report writers are built once, lazily, and reused for every study.

    ``writer`` is a :data:`radscribe.report.generate.GENERATORS` name; ``models`` is "auto" (every
    registered detector that applies), "none", or a comma list of :data:`DETECTORS` names. Both are
    validated here, before any study is read.
    """

    def __init__(self, *, writer: str = "structured", models: str = "auto"):
        self.writer = check_writer(writer)
        self.models = models
        self._wanted = parse_models(models)
        self._detectors: dict[str, Detector] = {}
        self._writers: dict[str, Any] = {}

    # --- the loaded things ------------------------------------------------------------------------
    def detector(self, name: str) -> Detector:
        """The session's instance of detector ``name`` (built on first use)."""
        det = self._detectors.get(name)
        if det is None:
            det = self._detectors[name] = get_detector(name)
        return det

    def generator(self, name: str) -> Any:
        gen = self._writers.get(name)
        if gen is None:
            from radscribe.report.generate import make_generator

            gen = self._writers[name] = make_generator(name)
        return gen

    # --- one study --------------------------------------------------------------------------------
    def analyze(self, path: Path, out: Path, *, overwrite: bool = False, series_uid: str | None = None,
                writer: str | None = None, models: str | None = None) -> Analysis:
        """Analyse one study and write the output folder. Raises RadscribeInputError on bad input
        (including an output location that cannot be written)."""
        from radscribe.io.loader import load_study
        from radscribe.preprocess.recognize import recognize, with_recognition

        out = Path(out)
        writer = check_writer(writer) if writer is not None else self.writer
        wanted = parse_models(models) if models is not None else self._wanted
        outputs.check_output_location(out, overwrite)
        t_start = time.perf_counter()
        run = _Run()
        t = time.perf_counter()
        loaded = load_study(Path(path), series_uid)
        run.evidence = loaded.evidence
        run.time("read", time.perf_counter() - t)
        t = time.perf_counter()
        recognition = recognize(loaded.image, loaded.header)
        image: Image = with_recognition(loaded.image, recognition)  # e.g. a NIfTI chest CT gets HU units
        run.time("recognize", time.perf_counter() - t)
        self._detect(image, recognition, wanted, run)

        study = outputs.study_info(loaded, recognition)
        if run.recognized is not None:
            modality, region, source = run.recognized
            study = replace(study, modality=modality, body_region=region, recognized_from=source)
        if run.notes:
            study = replace(study, notes=study.notes + tuple(run.notes))
        try:
            with atomic_dir(out, overwrite=overwrite) as tmp:
                return self._write(Path(path), image, study, run, writer, tmp, t_start)
        except OSError as exc:  # at the output boundary: one user-facing line; elsewhere (a model file) a bug
            where = Path(str(exc.filename)).absolute() if exc.filename else None
            if where is not None and out.absolute().parent not in (where, *where.parents):
                raise
            raise outputs.output_error(out, exc) from exc

    def _detect(self, image: Image, recognition: Any, wanted: tuple[str, ...] | None, run: _Run) -> None:
        names = list(DETECTORS) if wanted is None else list(wanted)
        for name in names:
            det = self.detector(name)
            if wanted is None and not getattr(det, "auto", True):
                continue  # an opt-in detector runs only when --models names it
            t = time.perf_counter()
            reason = det.applies(image, recognition)
            run.time("routing", time.perf_counter() - t)
            if reason is not None:
                run.note(reason if wanted is None else f"{name} was requested but does not apply to this study, "
                         f"so it was not run: {reason}")
                continue
            t = time.perf_counter()
            try:
                detection = det.detect(image)
            except RadscribeInputError as exc:  # e.g. weights that are not installed
                run.note(f"{name} applies but could not be run: {exc}")
                continue
            finally:
                run.time(f"detect:{name}", time.perf_counter() - t)
            run.add(det, detection)

    def _report(self, findings: list[Finding], study: StudyInfo, run: _Run, writer: str) -> Report:
        structured = write_structured(findings, study, region=study.body_region, modality=study.modality,
                                      detectors_run=run.detectors_run)
        if writer == "structured" or not run.detectors_run:
            return structured
        from radscribe.report.consistency import guard

        text = self.generator(writer).generate([f for f in findings if f.present])
        checked = guard(text, findings)
        return Report(findings=checked.text, impression=structured.impression,
                      writer=f"{writer} (+guard: {checked.n_corrections} corrections)")

    def _write(self, source: Path, image: Image, study: StudyInfo, run: _Run, writer: str, tmp: Path,
               t_start: float) -> Analysis:
        t = time.perf_counter()
        window = run.window or outputs.REGION_WINDOW.get(study.body_region, "mediastinum")
        findings = outputs.render_overlays(image, run.findings, run.heatmaps, run.masks, run.contours, window, tmp)
        run.time("overlays", time.perf_counter() - t)
        t = time.perf_counter()
        findings = write_layers(image, findings, run.masks, run.heatmaps, tmp)
        run.time("layers", time.perf_counter() - t)
        t = time.perf_counter()
        report = self._report(findings, study, run, writer)
        run.time("report", time.perf_counter() - t)
        for name, (det, content) in run.side_files.items():
            outputs.write_side_file(outputs.side_file_path(tmp, name, det), content)

        def analysis_now(study: StudyInfo) -> Analysis:
            run.timings["total"] = time.perf_counter() - t_start
            return Analysis(study=study, findings=tuple(findings), report=report,
                            detectors_run=tuple(run.detectors_run), timings=dict(run.timings),
                            radscribe_version=__version__)

        optional: list[str] = []
        if image.source_format.startswith("dicom"):
            t = time.perf_counter()
            try:
                outputs.write_sr(analysis_now(study), source, study.series_uid_hash, tmp / "report.sr.dcm",
                                 evidence=run.evidence)
            except Exception as exc:  # noqa: BLE001 - an optional output never sinks the study
                (tmp / "report.sr.dcm").unlink(missing_ok=True)
                optional.append(f"DICOM SR (report.sr.dcm) not written: {outputs.one_line(exc)}")
            run.time("dicom_sr", time.perf_counter() - t)
            if run.masks:
                t = time.perf_counter()
                try:
                    write_seg_for_study(tmp / "report.seg.dcm", source, study.series_uid_hash, image,
                                        run.findings, run.masks, evidence=run.evidence)
                except Exception as exc:  # noqa: BLE001 - an optional output never sinks the study
                    (tmp / "report.seg.dcm").unlink(missing_ok=True)
                    optional.append(f"DICOM SEG (report.seg.dcm) not written: {outputs.one_line(exc)}")
                run.time("dicom_seg", time.perf_counter() - t)
        study_now = replace(study, notes=study.notes + tuple(optional))
        markdown = outputs.report_markdown(analysis_now(study_now))
        try:
            fhir = outputs.fhir_json(analysis_now(study_now), markdown)
        except Exception as exc:  # noqa: BLE001 - an optional output never sinks the study
            fhir = None
            optional.append(f"FHIR DiagnosticReport (report.fhir.json) not written: {outputs.one_line(exc)}")
            study_now = replace(study, notes=study.notes + tuple(optional))
        analysis = analysis_now(study_now)
        doc = analysis.to_dict()
        validate_findings(doc)
        (tmp / "findings.json").write_text(json.dumps(doc, indent=2))
        (tmp / "report.md").write_text(outputs.report_markdown(analysis))
        if fhir is not None:
            (tmp / "report.fhir.json").write_text(fhir)
        return analysis


def analyze(path: Path, out: Path, *, overwrite: bool = False, series_uid: str | None = None,
            writer: str = "structured", models: str = "auto") -> Analysis:
    """Analyse one study with a fresh :class:`Analyzer` (see there); raises RadscribeInputError on bad input."""
    return Analyzer(writer=writer, models=models).analyze(path, out, overwrite=overwrite, series_uid=series_uid)


def cli_analyze(args: Any) -> int:
    """``radscribe analyze PATH [PATH ...] --out DIR`` (see :mod:`radscribe.pipeline.batch`)."""
    from radscribe.pipeline.batch import run_cli

    return run_cli(args, Analyzer)
