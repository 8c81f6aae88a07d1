"""Typed, frozen results: a :class:`Finding` per abnormality and one :class:`Analysis` per study.

JSON goes through one ``to_dict`` / ``from_dict`` pair. The JSON Schema that documents it,
``radscribe/findings/findings.schema.json``, is generated from these classes (the ``Annotated``
descriptions and bounds below, read by pydantic; :func:`radscribe.findings.schema.build_schema`) and
every ``findings.json`` written is validated against it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Annotated, Any, Literal

from pydantic import Field

SCHEMA_VERSION = "1.1"
#: Versions a reader accepts: 1.1 added ``Finding.confidence_type`` (optional; 1.0 documents stay valid).
SCHEMA_VERSIONS = ("1.0", "1.1")

#: What ``Finding.confidence`` is: a probability calibrated on held-out data, or a heuristic score.
CONFIDENCE_TYPES = ("calibrated_probability", "heuristic_score")

_Box6 = Annotated[tuple[float, ...] | None, Field(min_length=6, max_length=6)]
_Point3 = Annotated[tuple[float, ...] | None, Field(min_length=3, max_length=3)]
_Size = Annotated[float | None, Field(ge=0)]


def _tuple_or_none(v: Any) -> tuple | None:
    return None if v is None else tuple(float(x) for x in v)


@dataclass(frozen=True)
class Finding:
    """One abnormality (or a pertinent negative when ``present`` is False).

    Coordinates: voxel boxes are ``(z0, y0, x0, z1, y1, x1)`` with exclusive upper bounds; patient
    boxes are ``(x0, y0, z0, x1, y1, z1)`` in LPS mm. Sizes are in mm when the image has physical
    spacing, else in pixels (``size_unit`` says which).
    """

    kind: Annotated[str, Field(description="finding kind id from radscribe.knowledge (nodule, pneumonia, glioma ...)")]
    detector: Annotated[str, Field(description="the model or pipeline that made the finding")]
    confidence: Annotated[float, Field(ge=0, le=1, description="0..1; what it means is in confidence_type")]
    present: Annotated[bool, Field(description="false for a pertinent negative")] = True
    location: Annotated[str | None, Field(description="anatomy id from radscribe.knowledge")] = None
    side: Annotated[str | None, Field(description="laterality (radscribe.knowledge.SIDES)")] = None
    long_axis: _Size = None
    short_axis: _Size = None
    volume: Annotated[float | None, Field(ge=0, description="mm^3 (or voxels when size_unit is px)")] = None
    size_unit: Annotated[Literal["mm", "px"], Field(description="unit of long_axis / short_axis")] = "mm"
    attributes: dict[str, Any] = field(default_factory=dict)
    box_voxel: Annotated[_Box6, Field(description="(z0, y0, x0, z1, y1, x1), upper bounds exclusive")] = None
    box_patient: Annotated[_Box6, Field(description="(x0, y0, z0, x1, y1, z1) LPS mm")] = None
    center_voxel: _Point3 = None
    center_patient: _Point3 = None
    #: Relative paths (inside the output folder) of overlay / heatmap / mask files.
    artifacts: Annotated[dict[str, str], Field(description="relative paths of overlay / heatmap files")] = \
        field(default_factory=dict)
    #: Features a later stage can consume (e.g. a false-positive classifier): name -> number.
    features: dict[str, float] = field(default_factory=dict)
    #: What ``confidence`` is (see :data:`CONFIDENCE_TYPES`); detectors that calibrate say so.
    confidence_type: Annotated[Literal["calibrated_probability", "heuristic_score"], Field(description=(
        "calibrated_probability: the probability that the finding is present, calibrated on held-out data; "
        "heuristic_score: a score in 0..1 that orders findings but is not a probability"))] = "heuristic_score"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("box_voxel", "box_patient", "center_voxel", "center_patient"):
            d[k] = None if d[k] is None else [round(float(x), 3) for x in d[k]]
        for k in ("confidence", "long_axis", "short_axis", "volume"):
            if d[k] is not None:
                d[k] = round(float(d[k]), 4)
        d["features"] = {k: round(float(v), 5) for k, v in d["features"].items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Finding":
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        for k in ("box_voxel", "box_patient", "center_voxel", "center_patient"):
            kw[k] = _tuple_or_none(kw.get(k))
        return cls(**kw)


@dataclass(frozen=True)
class StudyInfo:
    """What was analysed, without patient identifiers."""

    source_format: Annotated[str, Field(description="dicom, dicom-series, dicom-multiframe, nifti, metaimage, nrrd, "
                                                     "png, jpeg")]
    modality: Annotated[str, Field(description="DICOM modality code: CT, MR, CR, DX, OT ...")]
    body_region: Annotated[str, Field(description="body region (radscribe.knowledge.BODY_REGIONS)")]
    shape: Annotated[tuple[Annotated[int, Field(ge=1)], ...], Field(min_length=3, max_length=3,
                                                                     description="(z, y, x) voxels")]
    spacing_mm: Annotated[tuple[Annotated[float, Field(gt=0)], ...] | None, Field(
        min_length=3, max_length=3, description="(z, y, x) mm; null when the image has no physical spacing")]
    #: How modality / region were decided: "header", "content" or "header+content".
    recognized_from: Literal["header", "content", "header+content", "none", "user"] = "header"
    series_description: str | None = None
    series_uid_hash: Annotated[str | None, Field(
        description="first 12 hex digits of sha256(SeriesInstanceUID); never the UID itself")] = None
    n_series_found: Annotated[int, Field(ge=0)] = 1
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["spacing_mm"] = None if self.spacing_mm is None else [round(float(s), 4) for s in self.spacing_mm]
        d["notes"] = list(self.notes)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StudyInfo":
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["shape"] = tuple(kw["shape"])
        kw["spacing_mm"] = _tuple_or_none(kw.get("spacing_mm"))
        kw["notes"] = tuple(kw.get("notes", ()))
        return cls(**kw)


@dataclass(frozen=True)
class Report:
    findings: str
    impression: str
    writer: str

    def to_markdown(self, title: str = "Report") -> str:
        return f"# {title}\n\n## Findings\n\n{self.findings.strip()}\n\n## Impression\n\n{self.impression.strip()}\n"


@dataclass(frozen=True)
class Analysis:
    """One analysed study: what was read (without patient identifiers), which detectors ran, every finding with
    its location, size, confidence and geometry, the report text and stage timings. Voxel coordinates are
    (z, y, x) indices; patient coordinates are DICOM LPS millimetres (x to the patient's left, y posterior,
    z superior). Sizes are in millimetres when size_unit is 'mm', otherwise in pixels."""

    study: StudyInfo
    findings: tuple[Finding, ...]
    report: Report | None = None
    detectors_run: tuple[str, ...] = ()
    #: Wall seconds per stage.
    timings: Annotated[dict[str, Annotated[float, Field(ge=0)]], Field(alias="timings_s")] = field(default_factory=dict)
    radscribe_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "radscribe_version": self.radscribe_version,
            "study": self.study.to_dict(),
            "detectors_run": list(self.detectors_run),
            "findings": [f.to_dict() for f in self.findings],
            "report": None if self.report is None else asdict(self.report),
            "timings_s": {k: round(float(v), 4) for k, v in self.timings.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Analysis":
        rep = d.get("report")
        return cls(
            study=StudyInfo.from_dict(d["study"]),
            findings=tuple(Finding.from_dict(f) for f in d["findings"]),
            report=None if rep is None else Report(**rep),
            detectors_run=tuple(d.get("detectors_run", ())),
            timings=dict(d.get("timings_s", {})),
            radscribe_version=d.get("radscribe_version", ""),
        )
