"""Per-finding masks and heatmaps as files a user (or a viewer) can open: PNG for a 2D image, NIfTI for a volume.

A mask is written as 0/255 (PNG) or 0/1 (NIfTI, uint8); a heatmap (0..1 float) as 0..255 (PNG), or as
uint8 with a scale factor of 1/255 (NIfTI; readers see 0..1). NIfTI files carry the image geometry in RAS+ world coordinates (what nibabel, ITK-SNAP and 3D
Slicer expect), so they overlay the source study exactly; the arrays here are (z, y, x) like
:class:`radscribe.io.image.Image`, NIfTI stores them (x, y, z).
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np

from radscribe.errors import RadscribeInputError
from radscribe.io.image import Image

#: LPS (DICOM, radscribe) -> RAS (NIfTI) world coordinates.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def png_bytes(layer2d: np.ndarray, *, is_mask: bool) -> bytes:
    """A (y, x) mask (bool) or heatmap (0..1) as an 8-bit grey PNG."""
    from PIL import Image as PILImage

    a = np.asarray(layer2d)
    if a.ndim != 2:
        raise ValueError(f"a PNG layer must be 2D, got shape {a.shape}")
    if is_mask:
        data = a.astype(bool).astype(np.uint8) * 255
    else:
        data = np.rint(np.clip(np.nan_to_num(a.astype(np.float32)), 0.0, 1.0) * 255).astype(np.uint8)
    buf = io.BytesIO()
    PILImage.fromarray(data, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def nifti_bytes(layer3d: np.ndarray, image: Image, *, is_mask: bool) -> bytes:
    """A (z, y, x) mask (uint8 0/1) or heatmap (float32) on ``image``'s grid as gzipped NIfTI-1 bytes."""
    import nibabel as nib

    a = np.asarray(layer3d)
    if a.shape != tuple(image.shape[:3]):
        raise ValueError(f"layer shape {a.shape} does not match the image grid {tuple(image.shape[:3])}")
    if is_mask:
        data = a.astype(bool).astype(np.uint8)
    else:  # 8 bits with a scale factor: 4x smaller than float32, and heatmaps carry no more precision
        data = np.rint(np.clip(np.nan_to_num(a.astype(np.float32)), 0.0, 1.0) * 255).astype(np.uint8)
    img = nib.Nifti1Image(np.ascontiguousarray(data.transpose(2, 1, 0)), LPS_TO_RAS @ image.affine)
    img.header.set_xyzt_units("mm")
    if not is_mask:
        img.header.set_slope_inter(1.0 / 255.0, 0.0)
    return gzip.compress(img.to_bytes(), mtime=0)


def layer_bytes(layer: np.ndarray, image: Image, *, is_mask: bool) -> tuple[str, bytes]:
    """(file suffix, bytes) for a layer on ``image``'s grid: ``.png`` for a 2D image, ``.nii.gz`` for a volume."""
    a = np.asarray(layer)
    if a.ndim == 3 and a.shape[0] == 1 and not image.is_volume:
        a = a[0]
    if a.ndim == 2:
        return ".png", png_bytes(a, is_mask=is_mask)
    return ".nii.gz", nifti_bytes(a, image, is_mask=is_mask)


def read_layer(path: Path) -> np.ndarray:
    """A layer file written here, back as (z, y, x) float32 in 0..1 (a 2D PNG gives z = 1)."""
    path = Path(path)
    try:
        if path.name.endswith(".png"):
            from PIL import Image as PILImage

            with PILImage.open(path) as im:
                return (np.asarray(im.convert("L"), dtype=np.float32) / 255.0)[None]
        if path.name.endswith((".nii", ".nii.gz")):
            import nibabel as nib

            return np.asarray(nib.load(str(path)).dataobj, dtype=np.float32).transpose(2, 1, 0)
    except (OSError, ValueError) as exc:
        raise RadscribeInputError(f"cannot read layer file {path.name}: {exc}") from None
    raise RadscribeInputError(f"{path.name}: a layer file is .png or .nii(.gz)")
