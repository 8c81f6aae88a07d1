"""DICOM Segmentation export (``report.seg.dcm``, highdicom): a detector's mask beside the source series.

Written only for DICOM inputs, for the same reason as the SR (:mod:`radscribe.report.sr`): a SEG object
belongs to the study it segments. It copies the patient/study identifiers of the source series, references
every source instance it has a frame for (Source Image Sequence per frame, via highdicom), and holds one
binary segment per finding mask: the segment is labelled with the finding's kind, coded as a neoplasm
(SNOMED CT "Neoplasm", category "Morphologically abnormal structure"), algorithm type AUTOMATIC.

:func:`build_seg` maps mask slices to source instances by ImagePositionPatient through the Image's
geometry (so the slice order of the Image and of the headers need not agree); :func:`read_back` checks a
written file: it parses as a Segmentation, references the source SOP instances and reproduces the mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from radscribe import __version__
from radscribe.io.image import Image
from radscribe.knowledge.ontology import FINDING_KINDS


def _slice_of(ds: Dataset, image: Image, n_slices: int, fallback: int) -> int:
    ipp = ds.get("ImagePositionPatient")
    if ipp is None or n_slices == 1:
        return fallback if n_slices > 1 else 0
    z = float(image.patient_to_voxel(np.asarray([float(v) for v in ipp]))[0])
    return int(np.clip(round(z), 0, n_slices - 1))


def build_seg(masks: dict[str, np.ndarray], image: Image, evidence: Sequence[Dataset]) -> Dataset:
    """A binary DICOM Segmentation with one segment per ``kind -> mask`` ((z, y, x) bool on the image grid).

    ``evidence``: the source series' headers (:func:`radscribe.report.sr.series_evidence`), single-frame
    images of the same grid as ``image``. Raises ValueError when nothing can be referenced.
    """
    sources = [ds for ds in evidence if "Rows" in ds and "Columns" in ds]
    if not sources or not masks:
        raise ValueError("a SEG needs the source series' headers and at least one mask")
    nz, ny, nx = image.shape
    for ds in sources:
        if (int(ds.Rows), int(ds.Columns)) != (ny, nx):
            raise ValueError(f"source image {ds.Rows}x{ds.Columns} does not match the mask grid {ny}x{nx}")
    idx = [_slice_of(ds, image, nz, i) for i, ds in enumerate(sources)]
    descriptions, planes = [], []
    for number, (kind, mask) in enumerate(masks.items(), start=1):
        m = np.asarray(mask, bool).reshape(image.shape)
        planes.append(np.stack([m[z] for z in idx]))
        label = FINDING_KINDS[kind].label if kind in FINDING_KINDS else kind.replace("_", " ")
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=label[:64],
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Neoplasm,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=hd.AlgorithmIdentificationSequence(
                name="radscribe mri-brain-tumor-seg", version=__version__, family=codes.DCM.ArtificialIntelligence),
        ))
    pixels = np.stack(planes, axis=-1).astype(np.uint8)  # (frames, rows, cols, segments)
    seg = hd.seg.Segmentation(
        source_images=list(sources), pixel_array=pixels, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=9902,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="radscribe",
        manufacturer_model_name="radscribe", software_versions=__version__, device_serial_number="0",
        series_description="radscribe segmentation (unverified)", omit_empty_frames=False,
    )
    return seg


def write_seg(path: Path, masks: dict[str, np.ndarray], image: Image, evidence: Sequence[Dataset]) -> Path:
    """Build and save ``report.seg.dcm`` (atomically: a failure leaves no partial file)."""
    from radscribe.io.output import atomic_file

    seg = build_seg(masks, image, evidence)
    path = Path(path)
    with atomic_file(path, "wb") as fh:
        seg.save_as(fh, enforce_file_format=True)
    return path


def read_back(path: Path, evidence: Sequence[Dataset]) -> dict:
    """Parse a written SEG and compare it with its sources: segment labels, referenced SOP instances and,
    per segment, the mask as (frames, rows, cols) in the order of ``evidence``."""
    seg = hd.seg.segread(str(path))
    sop_uids = [str(ds.SOPInstanceUID) for ds in evidence if "Rows" in ds]
    referenced = {str(r.ReferencedSOPInstanceUID) for s in seg.ReferencedSeriesSequence
                  for r in s.ReferencedInstanceSequence}
    labels = [str(d.SegmentLabel) for d in seg.SegmentSequence]
    masks = {}
    for number, label in enumerate(labels, start=1):
        vol = seg.get_pixels_by_source_instance(source_sop_instance_uids=sop_uids, segment_numbers=[number],
                                                 assert_missing_frames_are_empty=True)
        masks[label] = np.asarray(vol)[..., 0].astype(bool)
    return {"labels": labels, "referenced": referenced, "all_sources_referenced": set(sop_uids) <= referenced,
            "masks": masks, "modality": str(seg.Modality), "study_uid": str(seg.StudyInstanceUID)}


def write_seg_for_study(path: Path, source: Path, series_uid_hash: str | None, image: Image,
                        findings: Sequence, masks: dict[int, np.ndarray], evidence: Sequence = ()) -> Path | None:
    """The pipeline's entry: one segment per present finding with a mask (``Detection.masks`` keyed by the
    finding's index), referencing the analysed series at ``source``; None when no finding has a mask.
    ``evidence``: the series' headers as the loader read them; re-read from ``source`` when empty."""
    from radscribe.report.sr import series_evidence

    by_kind: dict[str, np.ndarray] = {}
    for i, m in masks.items():
        f = findings[i]
        if getattr(f, "present", True):
            key = f.kind if f.kind not in by_kind else f"{f.kind}_{i + 1}"
            by_kind[key] = np.asarray(m, bool).reshape(image.shape)
    if not by_kind:
        return None
    return write_seg(path, by_kind, image, list(evidence) or series_evidence(Path(source), series_uid_hash))
