"""Volumes from research formats: NIfTI (.nii, .nii.gz), MetaImage (.mhd + raw, .mha), NRRD (.nrrd, .nhdr).

NIfTI is read with nibabel. Its affine maps voxel ``(i, j, k)`` to RAS mm; radscribe is LPS, so the
first two rows change sign. The array is transposed from nibabel's ``(i, j, k)`` to ``(z, y, x)``
= ``(k, j, i)``. MetaImage and NRRD are read with SimpleITK, which is already LPS with ``(z, y, x)``
arrays. Sizes are checked from the header before any voxel is decoded.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from radscribe.errors import ImageTooLargeError, InvalidVoxelsError, RadscribeInputError, UnreadableFileError
from radscribe.io.image import MAX_SIDE, MAX_VOXELS, Image

NIFTI_SUFFIXES = (".nii", ".nii.gz")
ITK_SUFFIXES = (".mhd", ".mha", ".nrrd", ".nhdr")

#: RAS -> LPS: negate x and y.
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def volume_format(path: Path) -> str | None:
    """'nifti', 'metaimage', 'nrrd' or None, from the file name."""
    name = Path(path).name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith((".mhd", ".mha")):
        return "metaimage"
    if name.endswith((".nrrd", ".nhdr")):
        return "nrrd"
    return None


def _check_shape(shape: tuple[int, ...], path: Path) -> None:
    if len(shape) == 0 or any(int(s) <= 0 for s in shape):
        raise UnreadableFileError(f"{path} declares an image of size {tuple(shape)}; nothing to read")
    if max(int(s) for s in shape[:3]) > MAX_SIDE:
        raise ImageTooLargeError(f"{path} is {tuple(shape)} voxels; radscribe reads up to {MAX_SIDE} voxels "
                                 "a side: crop or downsample it first")
    n = int(np.prod([int(s) for s in shape[:3]], dtype=np.int64))
    if n > MAX_VOXELS:
        raise ImageTooLargeError(f"{path} would decode to {n:,} voxels, above the cap of {MAX_VOXELS:,}; "
                                 "crop or downsample it first")


def _check_finite(arr: np.ndarray, path: Path) -> None:
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        raise InvalidVoxelsError(f"{path} has {bad:,} NaN or infinite voxel value(s); radscribe does not "
                                 "analyse images with undefined values: fix or re-export the data")


def _split_affine(lps: np.ndarray, path: Path) -> tuple[tuple[float, float, float], np.ndarray, tuple]:
    """LPS affine (index i,j,k -> mm) -> spacing (z,y,x), direction (columns = x,y,z axes), origin."""
    m = lps[:3, :3]
    norms = np.linalg.norm(m, axis=0)
    if not np.all(np.isfinite(lps)) or np.any(norms <= 0):
        raise UnreadableFileError(f"{path} has a degenerate affine (a voxel axis of length 0); "
                                  "fix its header (qform/sform) and try again")
    direction = m / norms
    return (float(norms[2]), float(norms[1]), float(norms[0])), direction, tuple(float(x) for x in lps[:3, 3])


def read_nifti(path: Path) -> tuple[Image, list[str]]:
    """A NIfTI-1/2 file -> Image (LPS). 4D files give their first volume, with a note."""
    import nibabel as nib

    path = Path(path)
    notes: list[str] = []
    try:
        img = nib.load(str(path))
        shape = tuple(int(s) for s in img.header.get_data_shape())
    except Exception as e:
        raise UnreadableFileError(f"{path} could not be read as NIfTI ({type(e).__name__}: {e}); "
                                  "the file is damaged, truncated or not NIfTI") from None
    _check_shape(shape, path)
    try:
        proxy = img.dataobj
        if len(shape) > 3:
            extra = int(np.prod(shape[3:]))
            if extra > 1:
                notes.append(f"{len(shape)}D NIfTI of shape {shape}: analysed the first of {extra} volumes.")
            data = np.asarray(proxy[(slice(None),) * 3 + (0,) * (len(shape) - 3)], dtype=np.float32)
        else:
            data = np.asarray(proxy, dtype=np.float32)
    except Exception as e:
        raise UnreadableFileError(f"voxels of {path} could not be decoded ({type(e).__name__}: {e}); "
                                  "the file is probably truncated") from None
    while data.ndim < 3:
        data = data[..., None]
    _check_finite(data, path)
    affine = img.affine
    if affine is None:
        affine = np.diag(list(img.header.get_zooms()[:3]) + [1.0])
        notes.append("The NIfTI header has no usable qform/sform: assumed an axis-aligned grid.")
    spacing, direction, origin = _split_affine(_RAS_TO_LPS @ np.asarray(affine, dtype=float), path)
    arr = np.ascontiguousarray(data.transpose(2, 1, 0))
    return Image(array=arr, spacing=spacing, origin=origin, direction=direction, modality="OT",
                 units="arbitrary", spacing_known=True, source=str(path), source_format="nifti",
                 meta={"format": "NIfTI", "shape_xyz": list(shape[:3])}), notes


def _mhd_data_file(path: Path) -> None:
    """Fail with a clear message when a .mhd header names a data file that is not there."""
    try:
        text = path.read_text(errors="replace")[:8192]
    except OSError as e:
        raise UnreadableFileError(f"{path} could not be read ({e})") from None
    m = re.search(r"^\s*ElementDataFile\s*=\s*(.+?)\s*$", text, re.M)
    if m is None:
        raise UnreadableFileError(f"{path} is not a MetaImage header (no ElementDataFile line)")
    name = m.group(1)
    if name.upper() in ("LOCAL", "LIST") or "%" in name:
        return
    if not (path.parent / name).is_file():
        raise UnreadableFileError(f"{path} names the data file {name!r}, which is not beside it; "
                                  "copy the .raw/.zraw file next to the .mhd")


def read_itk(path: Path) -> tuple[Image, list[str]]:
    """MetaImage (.mhd/.mha) or NRRD (.nrrd/.nhdr) via SimpleITK -> Image (LPS)."""
    import SimpleITK as sitk

    path = Path(path)
    notes: list[str] = []
    fmt = volume_format(path)
    if path.suffix.lower() == ".mhd":
        _mhd_data_file(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except Exception as e:
        raise UnreadableFileError(f"{path} could not be read as {fmt} ({str(e).strip().splitlines()[-1]}); "
                                  "the file is damaged or not in that format") from None
    size = tuple(int(s) for s in reader.GetSize())  # (x, y[, z])
    _check_shape(size, path)
    try:
        img = reader.Execute()
    except Exception as e:
        raise UnreadableFileError(f"voxels of {path} could not be decoded "
                                  f"({str(e).strip().splitlines()[-1]}); the data is probably truncated") from None
    dim = img.GetDimension()
    if dim > 3:
        notes.append(f"{dim}D image: analysed the first 3D volume.")
        extractor = sitk.ExtractImageFilter()
        extractor.SetSize(list(img.GetSize()[:3]) + [0] * (dim - 3))
        extractor.SetIndex([0] * dim)
        img = extractor.Execute(img)
        dim = 3
    arr = sitk.GetArrayFromImage(img)
    if img.GetNumberOfComponentsPerPixel() > 1:
        c = arr.astype(np.float32)
        if c.shape[-1] >= 3 and np.array_equal(c[..., 0], c[..., 1]) and np.array_equal(c[..., 1], c[..., 2]):
            arr = c[..., 0]
        elif c.shape[-1] >= 3:
            arr = c[..., 0] * 0.299 + c[..., 1] * 0.587 + c[..., 2] * 0.114
            notes.append("Colour image converted to gray (luminance 0.299 R + 0.587 G + 0.114 B).")
        else:
            arr = c[..., 0]
            notes.append(f"{c.shape[-1]}-component image: analysed the first component.")
    arr = np.asarray(arr, dtype=np.float32)
    spacing = list(img.GetSpacing())
    origin = list(img.GetOrigin())
    d = np.asarray(img.GetDirection(), dtype=float).reshape(dim, dim)
    direction = np.eye(3)
    direction[:dim, :dim] = d
    while arr.ndim < 3:
        arr = arr[None]
    while len(spacing) < 3:
        spacing.append(1.0)
        origin.append(0.0)
    _check_finite(arr, path)
    if np.any(np.asarray(spacing) <= 0):
        raise UnreadableFileError(f"{path} has a non-positive voxel spacing {tuple(spacing)}; fix its header")
    meta = {"format": fmt}
    modality = "OT"
    try:
        if reader.HasMetaDataKey("Modality"):
            mod = reader.GetMetaData("Modality").strip().upper()  # MetaImage: MET_MOD_CT, MET_MOD_MR
            modality = {"MET_MOD_CT": "CT", "MET_MOD_MR": "MR"}.get(mod, "OT")
            meta["Modality"] = modality
    except RuntimeError:
        pass
    return Image(array=np.ascontiguousarray(arr), spacing=(float(spacing[2]), float(spacing[1]), float(spacing[0])),
                 origin=(float(origin[0]), float(origin[1]), float(origin[2])), direction=direction,
                 modality=modality, units="arbitrary", spacing_known=True, source=str(path),
                 source_format=fmt, meta=meta), notes


def read_volume(path: Path) -> tuple[Image, list[str]]:
    """Dispatch on the file name to :func:`read_nifti` or :func:`read_itk`."""
    fmt = volume_format(path)
    if fmt == "nifti":
        return read_nifti(path)
    if fmt in ("metaimage", "nrrd"):
        return read_itk(path)
    raise RadscribeInputError(f"{path} is not a NIfTI, MetaImage or NRRD file name")
