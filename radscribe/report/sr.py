"""DICOM Structured Report export (TID 1500 Measurement Report, Comprehensive 3D SR, via highdicom).

Written only for DICOM inputs, because an SR belongs to the study it describes: it copies the
patient and study identifiers from the source series (that is what lets a PACS file it with the
images), references every source instance as evidence, and carries one planar ROI per finding with a
box drawn on the finding's key slice in patient coordinates (LPS mm), the long/short axis and volume
as coded measurements, the finding site with laterality, and the detector's confidence.

Unlike ``findings.json`` (which never holds identifiers), ``report.sr.dcm`` therefore contains the
same patient identifiers as the source study.
"""

from __future__ import annotations

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
from radscribe.knowledge.ontology import ANATOMY, ATTRIBUTE_WORDS, FINDING_KINDS

#: Private coding scheme for radscribe's own concepts (DICOM PS3.16 allows 99-prefixed local schemes).
SCHEME = "99RADSCRIBE"
_CONFIDENCE = CodedConcept("RS0001", SCHEME, "Detector confidence")
_DENSITY = CodedConcept("RS0002", SCHEME, "Density")
_FINDING_TYPES = {"nodule": codes.SCT.Nodule, "mass": codes.SCT.Mass}
_SIDES = {"left": codes.SCT.Left, "right": codes.SCT.Right}


def series_evidence(path: Path, uid_hash: str | None) -> list[Dataset]:
    """Headers (no pixels) of the analysed series: the SR's evidence and identifier source."""
    from radscribe.io.dicom import group_series

    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    series, _ = group_series(files)
    chosen = next((s for s in series if s.uid_hash == uid_hash), series[0] if series else None)
    return [] if chosen is None else [ds for _, ds in chosen.headers]


def _finding_type(f: Finding) -> CodedConcept:
    code = _FINDING_TYPES.get(f.kind)
    if code is not None:
        return code
    k = FINDING_KINDS.get(f.kind)
    return CodedConcept(f"RSK-{f.kind}"[:16], SCHEME, k.label if k else f.kind)


def _roi(f: Finding, i: int, frame_of_reference: str) -> PlanarROIMeasurementsAndQualitativeEvaluations:
    x0, y0, z0, x1, y1, x1z = f.box_patient  # type: ignore[misc]
    zc = f.center_patient[2] if f.center_patient else (z0 + x1z) / 2
    polygon = np.array([[x0, y0, zc], [x1, y0, zc], [x1, y1, zc], [x0, y1, zc], [x0, y0, zc]], dtype=float)
    region = ImageRegion3D(graphic_type=hd.sr.GraphicTypeValues3D.POLYGON, graphic_data=polygon,
                           frame_of_reference_uid=frame_of_reference)
    algorithm = AlgorithmIdentification(name=f"radscribe {f.detector}", version=__version__)
    measurements = [Measurement(name=_CONFIDENCE, value=float(f.confidence), unit=codes.UCUM.NoUnits,
                                algorithm_id=algorithm)]
    if f.size_unit == "mm":
        if f.long_axis is not None:
            measurements.append(Measurement(name=codes.SCT.LongAxis, value=float(f.long_axis),
                                            unit=codes.UCUM.Millimeter, algorithm_id=algorithm))
        if f.short_axis is not None:
            measurements.append(Measurement(name=codes.SCT.ShortAxis, value=float(f.short_axis),
                                            unit=codes.UCUM.Millimeter, algorithm_id=algorithm))
        if f.volume is not None:
            measurements.append(Measurement(name=codes.SCT.Volume, value=float(f.volume),
                                            unit=codes.UCUM.CubicMillimeter, algorithm_id=algorithm))
    evaluations = []
    density = f.attributes.get("density")
    if density:
        evaluations.append(QualitativeEvaluation(
            _DENSITY, CodedConcept(f"RSD-{density}"[:16], SCHEME, ATTRIBUTE_WORDS.get(density, density))))
    sites = []
    if f.location in ANATOMY and ANATOMY[f.location].region == "chest" and f.kind in ("nodule", "mass"):
        sites.append(FindingSite(anatomic_location=codes.SCT.Lung, laterality=_SIDES.get(f.side or "")))
    return PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(uid=hd.UID(), identifier=f"finding {i + 1}"),
        referenced_region=region, finding_type=_finding_type(f), algorithm_id=algorithm,
        finding_sites=sites or None, measurements=measurements, qualitative_evaluations=evaluations or None,
    )


def _study_level_negative(analysis: Analysis) -> MeasurementsAndQualitativeEvaluations:
    """TID 1501 group for a study without a localised finding: what ran and that it found nothing.

    TID 1500 needs at least one measurement group, and "looked and found none" is itself the result.
    """
    looked = ", ".join(analysis.detectors_run) or "no applicable detector"
    result = CodedConcept("RS0004", SCHEME, "No localised finding detected")
    return MeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(uid=hd.UID(), identifier="study-level assessment"),
        algorithm_id=AlgorithmIdentification(name=f"radscribe ({looked})"[:64], version=__version__),
        qualitative_evaluations=[QualitativeEvaluation(CodedConcept("RS0003", SCHEME, "Assessment"), result)],
    )


def build_sr(analysis: Analysis, evidence: Sequence[Dataset]) -> Dataset:
    """A Comprehensive 3D SR holding every present finding that has a patient-space box."""
    if not evidence:
        raise ValueError("an SR needs the source series' headers as evidence")
    frame_of_reference = str(evidence[0].get("FrameOfReferenceUID", "") or "")
    rois = [_roi(f, i, frame_of_reference) for i, f in enumerate(analysis.findings)
            if f.present and f.box_patient is not None and frame_of_reference]
    observer = ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name="radscribe", manufacturer_name="radscribe", model_name=__version__))
    report = MeasurementReport(
        observation_context=ObservationContext(observer_device_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion if analysis.study.modality == "CT"
        else CodedConcept("RS-PROC", SCHEME, f"{analysis.study.modality} imaging"),
        imaging_measurements=rois or [_study_level_negative(analysis)],
    )
    sr = Comprehensive3DSR(
        evidence=list(evidence), content=report, series_instance_uid=hd.UID(), series_number=9901,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="radscribe",
        is_complete=True, is_final=False, is_verified=False,
    )
    sr.SeriesDescription = "radscribe findings (unverified)"
    return sr
