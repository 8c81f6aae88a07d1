"""PACS round trip over DICOMweb (``dicomweb-client``): find a study (QIDO-RS), fetch one series (WADO-RS),
analyse it, store the DICOM SR (and any DICOM SEG) back into the same study (STOW-RS).

A PACS job (``POST /v1/pacs/studies``) names a StudyInstanceUID and optionally a SeriesInstanceUID; without
one, the series with the most instances is analysed. The SR copies the source's patient and study modules
(:mod:`radscribe.report.sr`), which is what lets the PACS file it under the same patient and study.
``pacs.json`` in the job's output lists what was stored.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from radscribe.errors import RadscribeInputError

UID = r"^[0-9]+(\.[0-9]+)*$"
_TAG_SERIES_UID, _TAG_N, _TAG_MODALITY = "0020000E", "00201209", "00080060"


class PacsError(RadscribeInputError):
    """The PACS could not be reached, or it does not hold what was asked for."""


def client(url: str) -> Any:
    from dicomweb_client.api import DICOMwebClient

    return DICOMwebClient(url=url.rstrip("/"))


def _value(item: dict, tag: str) -> Any:
    vals = item.get(tag, {}).get("Value") or [None]
    return vals[0]


def choose_series(dw: Any, study_uid: str, series_uid: str | None = None) -> str:
    """The series to analyse: ``series_uid`` when it is in the study, else the one with most instances
    (SR, SEG, KO and PR series are never chosen)."""
    import requests

    try:
        found = dw.search_for_series(study_instance_uid=study_uid)
    except requests.RequestException as exc:
        raise PacsError(f"the PACS did not answer the series query ({type(exc).__name__})") from None
    series = [(s, _value(s, _TAG_SERIES_UID), _value(s, _TAG_MODALITY), _value(s, _TAG_N) or 0) for s in found]
    if not series:
        raise PacsError(f"the PACS holds no study {study_uid}; check the StudyInstanceUID")
    if series_uid is not None:
        if series_uid not in {s[1] for s in series}:
            raise PacsError(f"study {study_uid} has no series {series_uid}")
        return series_uid
    images = [s for s in series if s[2] not in ("SR", "SEG", "KO", "PR")]
    if not images:
        raise PacsError(f"study {study_uid} holds no image series")
    return max(images, key=lambda s: int(s[3]))[1]


def pull_series(dw: Any, study_uid: str, series_uid: str, dest: Path) -> int:
    """Fetch every instance of one series into ``dest`` (neutral names); returns how many."""
    import requests

    dest.mkdir(parents=True, exist_ok=True)
    try:
        instances = dw.retrieve_series(study_instance_uid=study_uid, series_instance_uid=series_uid)
    except requests.RequestException as exc:
        raise PacsError(f"the PACS did not send series {series_uid} ({type(exc).__name__})") from None
    for k, ds in enumerate(instances, 1):
        ds.save_as(dest / f"f{k:04d}.dcm", enforce_file_format=True)
    if not instances:
        raise PacsError(f"series {series_uid} of study {study_uid} has no instances")
    return len(instances)


def store_results(dw: Any, out: Path) -> list[dict[str, str]]:
    """STOW-RS the SR and any ``*.seg.dcm`` of an analysis output; returns what was stored."""
    import pydicom
    import requests

    files = sorted(p for p in out.rglob("*.dcm") if p.name == "report.sr.dcm" or p.name.endswith(".seg.dcm"))
    datasets = [pydicom.dcmread(p) for p in files]
    if not datasets:
        return []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dw.store_instances(datasets=datasets)
    except requests.RequestException as exc:
        raise PacsError(f"the PACS refused the results ({type(exc).__name__})") from None
    return [{"sop_instance_uid": str(ds.SOPInstanceUID), "series_instance_uid": str(ds.SeriesInstanceUID),
             "modality": str(ds.Modality), "file": p.name} for ds, p in zip(datasets, files)]


def run_pacs_job(job: Any, inp: Path, out: Path, session: Any, salt: bytes,
                 set_ref: Callable[[str | None], None], *, url: str | None = None) -> None:
    """The worker's pipeline for a PACS job: pull, analyse into ``out``, push back, write ``pacs.json``."""
    from radscribe.serve.worker import patient_ref

    params = job.params or {}
    url = url or params.get("pacs_url")
    if not url:
        raise PacsError("this server has no PACS configured (radscribe serve --pacs-url)")
    dw = client(url)
    study_uid = params["study_uid"]
    series_uid = choose_series(dw, study_uid, params.get("series_uid"))
    n = pull_series(dw, study_uid, series_uid, inp)
    set_ref(patient_ref(inp, salt))
    session.analyze(inp, out, overwrite=True, writer=job.writer, models=job.models)
    from radscribe.serve.worker import Worker

    Worker._viewer(inp, out)
    stored = store_results(dw, out) if params.get("store_back", True) else []
    (out / "pacs.json").write_text(json.dumps({"study_instance_uid": study_uid, "series_instance_uid": series_uid,
                                               "instances_pulled": n, "stored": stored}, indent=1))
