"""The one image type every step after ``io`` consumes.

Conventions (used everywhere in radscribe):

* ``array`` is ``float32`` with axes ``(z, y, x)``: slice, row, column. A 2D image has ``z == 1``.
* ``spacing`` is ``(z, y, x)`` in mm. For images without physical spacing (PNG/JPEG) it is
  ``(1, 1, 1)`` and ``spacing_known`` is False: sizes are then reported in pixels.
* ``origin`` is the patient-space position (LPS, mm, order x, y, z) of the centre of voxel
  ``(0, 0, 0)``.
* ``direction`` is a 3x3 matrix whose *columns* are the LPS unit vectors of the voxel axes
  ``x`` (column index), ``y`` (row index) and ``z`` (slice index) - the ITK/DICOM convention.
  LPS means +x points to the patient's Left, +y Posterior, +z Superior (head).
* For CT, ``units == "HU"`` and the values are Hounsfield units (rescale slope/intercept applied).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

#: The largest number of voxels radscribe decodes (~ 2048 x 2048 x 256). Checked before decoding.
MAX_VOXELS = 2048 * 2048 * 256
#: The largest side of a 2D image accepted (pixels).
MAX_SIDE = 16384


@dataclass(frozen=True)
class Image:
    array: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    modality: str = "OT"
    body_part: str | None = None
    units: str = "arbitrary"
    spacing_known: bool = True
    source: str = ""
    source_format: str = ""
    #: Non-identifying header facts (manufacturer, kernel, slice thickness, series description...).
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"Image.array must be 3D (z, y, x), got shape {self.array.shape}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    @property
    def is_volume(self) -> bool:
        return self.array.shape[0] > 1

    @property
    def affine(self) -> np.ndarray:
        """4x4 matrix mapping homogeneous voxel index ``(x, y, z, 1)`` to LPS mm."""
        sz, sy, sx = self.spacing
        a = np.eye(4)
        a[:3, :3] = np.asarray(self.direction, dtype=float) @ np.diag([sx, sy, sz])
        a[:3, 3] = self.origin
        return a

    def voxel_to_patient(self, zyx: Any) -> np.ndarray:
        """Voxel index/indices ``(z, y, x)`` (float allowed) -> LPS mm ``(x, y, z)``."""
        zyx = np.asarray(zyx, dtype=float)
        xyz1 = np.concatenate([zyx[..., ::-1], np.ones(zyx.shape[:-1] + (1,))], axis=-1)
        return (xyz1 @ self.affine.T)[..., :3]

    def patient_to_voxel(self, xyz: Any) -> np.ndarray:
        """LPS mm ``(x, y, z)`` -> voxel index ``(z, y, x)`` (float)."""
        xyz = np.asarray(xyz, dtype=float)
        xyz1 = np.concatenate([xyz, np.ones(xyz.shape[:-1] + (1,))], axis=-1)
        ijk = (xyz1 @ np.linalg.inv(self.affine).T)[..., :3]
        return ijk[..., ::-1]

    def patient_left_is_increasing_x(self) -> bool:
        """True when the column index grows towards the patient's left (the usual axial CT view)."""
        return float(np.asarray(self.direction)[0, 0]) > 0

    def with_array(self, array: np.ndarray, **changes: Any) -> "Image":
        return replace(self, array=array, **changes)
