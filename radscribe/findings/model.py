"""Typed, frozen results: a :class:`Finding` per abnormality and one :class:`Analysis` per study.

JSON goes through one ``to_dict`` / ``from_dict`` pair; the JSON Schema that documents it ships as
``radscribe/findings/findings.schema.json`` and every ``findings.json`` written is validated
against it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

SCHEMA_VERSION = "1.0"


def _tuple_or_none(v: Any) -> tuple | None:
    return None if v is None else tuple(float(x) for x in v)


@dataclass(frozen=True)
class Finding:
    """One abnormality (or a pertinent negative when ``present`` is False).

    Coordinates: voxel boxes are ``(z0, y0, x0, z1, y1, x1)`` with exclusive upper bounds; patient
    boxes are ``(x0, y0, z0, x1, y1, z1)`` in LPS mm. Sizes are in mm when the image has physical
    spacing, else in pixels (``size_unit`` says which).
    """

    kind: str
    detector: str
    confidence: float
    present: bool = True
    location: str | None = None
    side: str | None = None
    long_axis: float | None = None
    short_axis: float | None = None
    volume: float | None = None
    size_unit: str = "mm"
    attributes: dict[str, Any] = field(default_factory=dict)
    box_voxel: tuple | None = None
    box_patient: tuple | None = None
    center_voxel: tuple | None = None
    center_patient: tuple | None = None
    #: Relative paths (inside the output folder) of overlay / heatmap / mask files.
    artifacts: dict[str, str] = field(default_factory=dict)
    #: Features a later stage can consume (e.g. a false-positive classifier): name -> number.
    features: dict[str, float] = field(default_factory=dict)

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

    source_format: str
    modality: str
    body_region: str
    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float] | None
    #: How modality / region were decided: "header", "content" or "header+content".
    recognized_from: str = "header"
    series_description: str | None = None
    series_uid_hash: str | None = None
    n_series_found: int = 1
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
    study: StudyInfo
    findings: tuple[Finding, ...]
    report: Report | None = None
    detectors_run: tuple[str, ...] = ()
    #: Wall seconds per stage.
    timings: dict[str, float] = field(default_factory=dict)
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
