"""DICOM Structured Report export (TID 1500 Measurement Report, Comprehensive 3D SR, via highdicom).

Written only for DICOM inputs, because an SR belongs to the study it describes: it copies the
patient and study identifiers from the source series (that is what lets a PACS file it with the
images), references every source instance as evidence, and carries one planar ROI per finding with a
box drawn on the finding's key slice in patient coordinates (LPS mm), the long/short axis and volume
as coded measurements (UCUM units), the finding site with laterality, and the detector's confidence as
DICOM's "Certainty of Finding" (percent). Every concept comes from :mod:`radscribe.knowledge.codes`:
standard SNOMED CT / DICOM / LOINC codes, and radscribe's local scheme (``99RADSCRIBE``) only for a
finding kind that has no standard concept.

Unlike ``findings.json`` (which never holds identifiers), ``report.sr.dcm`` therefore contains the
same patient identifiers as the source study.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
from highdicom.sr import (
    AlgorithmIdentification, Comprehensive3DSR, DeviceObserverIdentifyingAttributes, FindingSite,
    ImageRegion3D, Measurement, MeasurementReport, MeasurementsAndQualitativeEvaluations, ObservationContext, ObserverContext,
    PlanarROIMeasurementsAndQualitativeEvaluations, QualitativeEvaluation, TrackingIdentifier,
)
from highdicom.sr.coding import CodedConcept
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from radscribe import __version__
from radscribe.findings.model import Analysis, Finding
from radscribe.io.dicom import group_series
from radscribe.knowledge import codes as kc
from radscribe.knowledge.descriptors import ATTRIBUTE_WORDS
from radscribe.knowledge.kinds import FINDING_KINDS

#: Type 2 attributes (present, possibly empty) of the modules highdicom copies from the source series:
#: Patient (PS3.3 C.7.1.1) and General Study (C.7.2.1). De-identification tools often delete them.
TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                "ReferringPhysicianName", "StudyID", "AccessionNumber")


def _cc(code: kc.Code) -> CodedConcept:
    return CodedConcept(code.value, code.scheme, code.meaning)


def series_evidence(path: Path, uid_hash: str | None) -> list[Dataset]:
    """Headers (no pixels) of the analysed series: the SR's evidence and identifier source."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    series, _ = group_series(files)
    chosen = next((s for s in series if s.uid_hash == uid_hash), series[0] if series else None)
    return [] if chosen is None else [ds for _, ds in chosen.headers]


def _with_type2(evidence: Sequence[Dataset]) -> list[Dataset]:
    """The evidence, with every missing type 2 patient/study attribute added empty (as PS3.3 allows).

    The caller's datasets are not changed: a dataset that lacks one is copied first."""
    out = []
    for ds in evidence:
        missing = [k for k in TYPE2_COPIED if k not in ds]
        if missing:
            ds = copy.deepcopy(ds)
            for k in missing:
                setattr(ds, k, None)
        out.append(ds)
    return out


def _finding_type(f: Finding) -> CodedConcept:
    """The kind's standard concept; radscribe's local scheme only for a kind without one."""
    code = kc.KIND_CODES.get(f.kind)
    if code is not None:
        return _cc(code)
    k = FINDING_KINDS.get(f.kind)
    return CodedConcept(f"RSK-{f.kind}"[:16], kc.LOCAL_SCHEME, k.label if k else f.kind)


def _finding_sites(f: Finding) -> list[FindingSite]:
    site = kc.anatomy_code(f.location)
    if site is None:
        return []
    concept, implied_side = site
    side = kc.side_code(implied_side or f.side)
    return [FindingSite(anatomic_location=_cc(concept), laterality=_cc(side) if side else None)]


def _roi(f: Finding, i: int, frame_of_reference: str) -> PlanarROIMeasurementsAndQualitativeEvaluations:
    x0, y0, z0, x1, y1, x1z = f.box_patient  # type: ignore[misc]
    zc = f.center_patient[2] if f.center_patient else (z0 + x1z) / 2
    polygon = np.array([[x0, y0, zc], [x1, y0, zc], [x1, y1, zc], [x0, y1, zc], [x0, y0, zc]], dtype=float)
    region = ImageRegion3D(graphic_type=hd.sr.GraphicTypeValues3D.POLYGON, graphic_data=polygon,
                           frame_of_reference_uid=frame_of_reference)
    algorithm = AlgorithmIdentification(name=f"radscribe {f.detector}", version=__version__)
    measurements = [Measurement(name=_cc(kc.CERTAINTY_OF_FINDING), value=round(100.0 * float(f.confidence), 4),
                                unit=_cc(kc.unit_code("%")), algorithm_id=algorithm)]
    if f.size_unit == "mm":
        for name, value, unit in ((kc.LONG_AXIS, f.long_axis, "mm"), (kc.SHORT_AXIS, f.short_axis, "mm"),
                                  (kc.VOLUME, f.volume, "mm3")):
            if value is not None:
                measurements.append(Measurement(name=_cc(name), value=float(value), unit=_cc(kc.unit_code(unit)),
                                                algorithm_id=algorithm))
    evaluations = []
    density = f.attributes.get("density")
    words = f" ({ATTRIBUTE_WORDS.get(density, density)})" if density else ""
    if density in kc.ATTRIBUTE_CODES:   # densities without a standard concept stay in the identifier text
        evaluations.append(QualitativeEvaluation(_cc(kc.LESION_DENSITY), _cc(kc.ATTRIBUTE_CODES[density])))
    return PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(uid=hd.UID(), identifier=f"finding {i + 1}{words}"[:64]),
        referenced_region=region, finding_type=_finding_type(f), algorithm_id=algorithm,
        finding_sites=_finding_sites(f) or None, measurements=measurements,
        qualitative_evaluations=evaluations or None,
    )


def _study_level_negative(analysis: Analysis) -> MeasurementsAndQualitativeEvaluations:
    """TID 1501 group for a study without a localised finding: what ran and that it found nothing.

    TID 1500 needs at least one measurement group, and "looked and found none" is itself the result.
    """
    looked = ", ".join(analysis.detectors_run) or "no applicable detector"
    return MeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(uid=hd.UID(), identifier="study-level assessment"),
        algorithm_id=AlgorithmIdentification(name=f"radscribe ({looked})"[:64], version=__version__),
        qualitative_evaluations=[QualitativeEvaluation(_cc(kc.SUMMARY_OF_DETECTIONS),
                                                       _cc(kc.ALL_SUCCEEDED_WITHOUT_FINDINGS))],
    )


def build_sr(analysis: Analysis, evidence: Sequence[Dataset]) -> Dataset:
    """A Comprehensive 3D SR holding every present finding that has a patient-space box.

    Type 2 patient/study attributes missing from the source (as after de-identification) are written
    present and empty; the caller's datasets are left unchanged.
    """
    if not evidence:
        raise ValueError("an SR needs the source series' headers as evidence")
    evidence = _with_type2(evidence)
    frame_of_reference = str(evidence[0].get("FrameOfReferenceUID", "") or "")
    rois = [_roi(f, i, frame_of_reference) for i, f in enumerate(analysis.findings)
            if f.present and f.box_patient is not None and frame_of_reference]
    observer = ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name="radscribe", manufacturer_name="radscribe", model_name=__version__))
    report = MeasurementReport(
        observation_context=ObservationContext(observer_device_context=observer),
        procedure_reported=_cc(kc.procedure_code(analysis.study.modality)),
        imaging_measurements=rois or [_study_level_negative(analysis)],
    )
    sr = Comprehensive3DSR(
        evidence=list(evidence), content=report, series_instance_uid=hd.UID(), series_number=9901,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="radscribe",
        is_complete=True, is_final=False, is_verified=False,
    )
    sr.SeriesDescription = "radscribe findings (unverified)"
    return sr
