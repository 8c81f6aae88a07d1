"""A synthetic chest CT with known nodules, written as a real DICOM series.

The phantom is analytic: body ellipse with a subcutaneous fat ring, two superquadric lungs around
-850 HU, heart and mediastinum, spine, sternum and ribs, trachea and main bronchi (air with walls,
capped so their lumen never touches lung air), branching pulmonary vessel trees (tubes of 1-8 mm
diameter at +40 HU, random 3D directions, thinner towards the periphery - the main false-positive
source for a nodule detector) and ``n_nodules`` spherical nodules of known centre, diameter and
density, some of them touching a vessel. Gaussian noise is added last.

Geometry: array axes ``(z, y, x)``; ``spacing`` ``(z, y, x)`` mm; identity orientation, so the
column index grows towards patient Left (+x LPS), the row index towards Posterior (+y) and the
slice index towards Superior (+z). ``origin`` is the LPS position ``(x, y, z)`` of voxel (0,0,0).
The default field of view is 325 x 358.4 x 358.4 mm (z, y, x), i.e. 2.5 mm slices and 0.7 mm
pixels at the default shape 130 x 512 x 512; other shapes keep the field of view and change the
spacing, so the anatomy stays the same size in mm.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid

from radscribe.data.phantom_anatomy import (Grid, heart_fn, in_lung, lung_fn, lung_params, render_sphere, render_tube,
                                           rot_perturb, vessel_tree, zone_of)
from radscribe.data.phantom_masses import mass_rng, plan_masses, render_mass
from radscribe.data.phantom_masses import mass_truth as mass_truth_of
from radscribe.errors import RadscribeInputError
from radscribe.io.image import Image
from radscribe.io.output import atomic_dir, check_output_dir

#: Default field of view (z, y, x) in mm.
FOV_MM = (325.0, 358.4, 358.4)
#: Nominal tissue values (HU) of the phantom.
HU = {"air": -1000.0, "lung": -850.0, "fat": -100.0, "soft": 40.0, "blood": 40.0,
      "marrow": 250.0, "cortex": 700.0, "rib": 600.0}
#: Density classes and the HU range each is drawn from.
DENSITY_HU = {"solid": (20.0, 60.0), "ground_glass": (-600.0, -450.0), "part_solid": (-600.0, -450.0),
              "calcified": (300.0, 600.0)}
NOISE_SIGMA_HU = 30.0


@dataclass(frozen=True)
class Phantom:
    """``volume_hu``: int16 (z, y, x) HU; ``spacing`` (z, y, x) mm; ``origin`` LPS (x, y, z) mm."""

    volume_hu: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    truth: dict[str, Any]
    #: uint8 (z, y, x): k on the voxels at least half filled by mass k's body (``truth["masses"][k-1]``);
    #: None without masses.
    mass_labels: np.ndarray | None = None

    def to_image(self):
        """The phantom as a :class:`radscribe.io.image.Image` in HU (identity direction)."""
        return Image(array=self.volume_hu.astype(np.float32), spacing=self.spacing, origin=self.origin,
                     direction=np.eye(3), modality="CT", body_part="CHEST", units="HU",
                     source=f"phantom:seed{self.truth['seed']}", source_format="phantom")


def make_phantom(seed: int, shape: tuple[int, int, int] = (130, 512, 512), n_nodules: int = 4,
                 spacing: tuple[float, float, float] | None = None,
                 nodules: list[dict[str, Any]] | None = None, n_masses: int = 0,
                 masses: list[dict[str, Any]] | None = None) -> Phantom:
    """Build a phantom chest CT (HU, int16, z y x) with ``n_nodules`` known nodules.

    ``spacing`` (z, y, x mm) defaults to the 325 x 358.4 x 358.4 mm field of view divided by
    ``shape``. ``nodules`` optionally fixes the nodules' properties (a list of dicts with any of
    ``diameter_mm``, ``density``, ``side``, ``touches_vessel``; positions stay random) and then
    replaces ``n_nodules``. ``truth["nodules"]`` lists each nodule's centre (voxel z,y,x and LPS mm x,y,z),
    diameter (mm), density class, HU, side, zone and whether it touches a vessel.

    ``n_masses`` lung masses of 30-70 mm (or ``masses``: dicts with any of ``diameter_mm``, ``site``
    pleura / mediastinum / hilum, ``side``, ``margin`` lobulated / spiculated) are added from a separate
    random generator (:mod:`radscribe.data.phantom_masses`), so a seed's nodules, vessels and noise are
    the same with or without them; ``truth["masses"]`` lists their measured centre, axes, volume, zone
    and what they abut.
    """
    if len(shape) != 3 or min(shape) < 16:
        raise RadscribeInputError(f"phantom shape must be three sizes >= 16 (z,y,x), got {shape}")
    specs = list(nodules) if nodules is not None else None
    if specs is not None:
        n_nodules = len(specs)
    if not 0 <= n_nodules <= 40:
        raise RadscribeInputError(f"--n-nodules must be between 0 and 40, got {n_nodules}")
    mass_specs = list(masses) if masses is not None else [{} for _ in range(int(n_masses))]
    if len(mass_specs) > 6:
        raise RadscribeInputError(f"--n-masses must be between 0 and 6, got {len(mass_specs)}")
    rng = np.random.default_rng(seed)
    if spacing is None:
        spacing = tuple(f / n for f, n in zip(FOV_MM, shape))
    nz, ny, nx = shape
    sz, sy, sx = spacing
    origin = (-(nx - 1) / 2 * sx, -(ny - 1) / 2 * sy, -(nz - 1) / 2 * sz)
    g = Grid(shape, spacing, origin)
    Z, Y, X = g.mesh((slice(None),) * 3)

    # body, fat ring and soft tissue (2D, the same on every slice)
    yy, xx = Y[0], X[0]
    body_e = (xx / 170.0) ** 2 + (yy / 125.0) ** 2
    inner_e = (xx / 155.0) ** 2 + (yy / 110.0) ** 2
    sl2d = np.full((ny, nx), HU["air"], np.float32)
    sl2d[body_e <= 1] = HU["fat"]
    sl2d[inner_e <= 1] = HU["soft"]
    vol = np.broadcast_to(sl2d, shape).copy()

    # spine (vertebral body: marrow + cortex; canal), sternum
    r2 = xx ** 2 + (yy - 95.0) ** 2
    spine = np.where(r2 <= 17.0 ** 2, HU["marrow"], np.nan)
    spine[(r2 <= 17.0 ** 2) & (r2 >= 14.5 ** 2)] = HU["cortex"]
    spine[xx ** 2 + (yy - 121.0) ** 2 <= 7.0 ** 2] = HU["soft"]
    m = ~np.isnan(spine)
    vol[:, m] = spine[m]
    zs = g.box((-200, -200, -60), (200, 200, 200))[0]
    stern = (np.abs(xx) <= 15) & (np.abs(yy + 108) <= 5)
    vol[zs, stern] = HU["rib"]

    # ribs: elliptic arcs around the lungs, sloping down anteriorly
    for level in np.arange(100.0, -150.0, -23.0):
        for s in (-1.0, 1.0):
            th = np.radians(np.linspace(8, 150, 18))
            pts = np.stack([s * 152.0 * np.sin(th), 5.0 + 104.0 * np.cos(th), level - 70.0 * th / th[-1]], 1)
            for a, b in zip(pts[:-1], pts[1:]):
                render_tube(vol, g, a, b, 4.5, HU["rib"])

    # lungs (minus the heart), heart
    lung = np.zeros(shape, bool)
    side_masks = {}
    for side in ("right", "left"):
        p = lung_params(side)
        bx = g.box((p["cx"] - p["ax"], p["cy"] - p["ay"], p["cz"] - p["az_dn"]),
                   (p["cx"] + p["ax"], p["cy"] + p["ay"], p["cz"] + p["az_up"]))
        z, y, x = g.mesh(bx)
        m = (lung_fn(p, z, y, x) < 1.0) & (heart_fn(z, y, x, grow=6.0) > 1.0)
        sm = np.zeros(shape, bool)
        sm[bx] = m
        side_masks[side] = sm
        lung |= sm
    vol[lung] = HU["lung"]

    # trachea and main bronchi: lumen air, 3 mm walls, capped ends
    top = float(g.z[-1]) + 5.0
    carina = np.array([0.0, 25.0, 35.0])
    tubes = [(np.array([0.0, 25.0, top]), carina, 9.0),
             (carina, np.array([-30.0, 10.0, 10.0]), 6.5),
             (carina, np.array([30.0, 15.0, 5.0]), 6.0)]
    for a, b, r in tubes:
        render_tube(vol, g, a, b, r + 3.0, HU["soft"])
    for a, b, r in tubes:
        render_tube(vol, g, a, b, r, HU["air"])

    # vessels
    segs = []
    for side in ("right", "left"):
        segs += [(side, a, b, r) for a, b, r in vessel_tree(rng, side)]
    for side, a, b, r in segs:
        render_tube(vol, g, a, b, r, HU["blood"], where=lung)

    # nodules
    extents = {}
    for side, sm in side_masks.items():
        zi = np.nonzero(sm.any(axis=(1, 2)))[0]
        extents[side] = (float(g.z[zi[-1]]), float(g.z[zi[0]]))
    densities = ["solid", "ground_glass", "part_solid", "calcified"]
    dirs = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)
                     if (i, j, k) != (0, 0, 0)], float)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    placed: list[dict[str, Any]] = []
    tries = 0
    while len(placed) < n_nodules and tries < 5000:
        tries += 1
        diam = float(np.exp(rng.uniform(np.log(3.0), np.log(20.0))))
        dens = str(rng.choice(densities, p=[0.5, 0.2, 0.15, 0.15]))
        if dens == "part_solid" and diam < 8.0:
            dens = "solid"
        if dens == "ground_glass" and diam < 5.0:
            diam = float(rng.uniform(5.0, 10.0))
        side = str(rng.choice(["right", "left"]))
        touch = bool(rng.random() < 0.4)
        if specs is not None:
            spec = specs[len(placed)]
            diam = float(spec.get("diameter_mm", diam))
            dens = str(spec.get("density", dens))
            side = str(spec.get("side", side))
            touch = bool(spec.get("touches_vessel", touch))
            if dens not in DENSITY_HU:
                raise RadscribeInputError(f"unknown nodule density {dens!r}; known: {sorted(DENSITY_HU)}")
        r = diam / 2
        if touch:
            cands = [s for s in segs if s[0] == side and 0.8 <= s[3] <= 2.5]
            if not cands:
                continue
            _, a, b, rv = cands[rng.integers(len(cands))]
            pt = a + rng.uniform(0.2, 0.8) * (b - a)
            off = rot_perturb(rng, (b - a), 90.0)
            c = pt + off * (r + rv - 0.5)
        else:
            p = lung_params(side)
            c = np.array([rng.uniform(p["cx"] - p["ax"], p["cx"] + p["ax"]),
                          rng.uniform(p["cy"] - p["ay"], p["cy"] + p["ay"]),
                          rng.uniform(p["cz"] - p["az_dn"], p["cz"] + p["az_up"])])
        ring = c[None, :] + dirs * (r + 3.0)
        if not (in_lung(side, c[None])[0] and in_lung(side, ring).all()):
            continue
        if any(np.linalg.norm(c - np.array(n["center_patient"])) < r + n["diameter_mm"] / 2 + 10 for n in placed):
            continue
        lo, hi = DENSITY_HU[dens]
        hu = float(rng.uniform(lo, hi))
        vox = np.array([(c[2] - origin[2]) / sz, (c[1] - origin[1]) / sy, (c[0] - origin[0]) / sx])
        top_z, bot_z = extents[side]
        n = {"id": len(placed) + 1, "center_voxel": [round(float(v), 3) for v in vox],
             "center_patient": [round(float(v), 3) for v in c], "diameter_mm": round(diam, 3),
             "density": dens, "hu": round(hu, 1), "side": side, "zone": zone_of(float(c[2]), top_z, bot_z),
             "touches_vessel": touch}
        if dens == "part_solid":
            n["solid_core_diameter_mm"] = round(diam / 2, 3)
            n["solid_core_hu"] = round(float(rng.uniform(*DENSITY_HU["solid"])), 1)
        placed.append(n)
    for n in placed:
        c = np.array(n["center_patient"])
        render_sphere(vol, g, c, n["diameter_mm"] / 2, n["hu"])
        if n["density"] == "part_solid":
            render_sphere(vol, g, c, n["solid_core_diameter_mm"] / 2, n["solid_core_hu"])
    mass_truth = []
    mass_labels = None
    if mass_specs:
        mass_labels = np.zeros(shape, np.uint8)
        mrng = mass_rng(seed)
        avoid = [(np.array(n["center_patient"]), n["diameter_mm"] / 2) for n in placed]
        for k, plan in enumerate(plan_masses(mrng, mass_specs, avoid, extents)):
            mbox, frac = render_mass(vol, g, plan, side_masks[plan["side"]])
            mass_truth.append(mass_truth_of(plan, mbox, frac, g, extents, lung, k + 1))
            mass_labels[mbox][frac >= 0.5] = k + 1

    noise = rng.standard_normal(shape, dtype=np.float32)
    noise *= NOISE_SIGMA_HU
    vol += noise
    np.clip(vol, -1024, 3071, out=vol)
    vol_hu = np.rint(vol).astype(np.int16)

    vox_ml = sz * sy * sx / 1000.0
    truth = {
        "seed": int(seed), "shape": list(shape), "spacing_zyx_mm": [float(s) for s in spacing],
        "origin_lps_mm": [float(o) for o in origin], "orientation": [1, 0, 0, 0, 1, 0],
        "lung_volume_ml": {s: round(float(m.sum()) * vox_ml, 1) for s, m in side_masks.items()},
        "lung_z_extent_mm": {s: list(e) for s, e in extents.items()},
        "n_vessel_segments": len(segs), "noise_sigma_hu": NOISE_SIGMA_HU,
        "nodules": placed,
        "masses": mass_truth,
        "notes": ["synthetic phantom; no real patient data",
                  "zone = third of that lung's cranio-caudal extent containing the centre"],
    }
    return Phantom(volume_hu=vol_hu, spacing=tuple(float(s) for s in spacing), origin=origin, truth=truth,
                   mass_labels=mass_labels)


# ----------------------------------------------------------------------------------------------
# DICOM

def write_dicom_series(volume_hu: np.ndarray, spacing, origin, out_dir: Path, *, seed: int = 0,
                       study_description: str = "CT CHEST PHANTOM") -> list[Path]:
    """Write ``volume_hu`` (int16 HU, z y x) as a CT Image Storage series, one file per slice.

    Stored values are uint16 with RescaleSlope 1 / RescaleIntercept -1024; slice ``k`` is at
    ImagePositionPatient ``origin + k * spacing_z`` along +z (LPS), orientation ``[1,0,0,0,1,0]``.
    UIDs are derived from the seed and geometry (same phantom -> same UIDs).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    nz, ny, nx = volume_hu.shape
    sz, sy, sx = (float(s) for s in spacing)
    key = f"radscribe-phantom-{seed}-{nz}x{ny}x{nx}-{sz:.4f}-{sy:.4f}"
    study_uid = generate_uid(entropy_srcs=[key, "study"])
    series_uid = generate_uid(entropy_srcs=[key, "series"])
    frame_uid = generate_uid(entropy_srcs=[key, "frame"])
    stored = np.clip(volume_hu.astype(np.int32) + 1024, 0, 65535).astype(np.uint16)
    date = "20000101"
    paths = []
    for k in range(nz):
        sop_uid = generate_uid(entropy_srcs=[key, "sop", str(k)])
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.PatientName = f"PHANTOM^SEED{seed}"
        ds.PatientID = f"PHANTOM{seed}"
        ds.PatientBirthDate = ""
        ds.PatientSex = "O"
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = date
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = "000000"
        ds.AccessionNumber = ""
        ds.ReferringPhysicianName = ""
        ds.StudyID = "1"
        ds.Modality = "CT"
        ds.Manufacturer = "radscribe phantom"
        ds.BodyPartExamined = "CHEST"
        ds.StudyDescription = study_description
        ds.SeriesDescription = f"PHANTOM SEED {seed}"
        ds.SeriesNumber = 1
        ds.InstanceNumber = k + 1
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        ds.PatientPosition = "FFS"
        ds.ImagePositionPatient = [f"{origin[0]:.4f}", f"{origin[1]:.4f}", f"{origin[2] + k * sz:.4f}"]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation = f"{origin[2] + k * sz:.4f}"
        ds.PixelSpacing = [f"{sy:.6g}", f"{sx:.6g}"]
        ds.SliceThickness = f"{sz:.6g}"
        ds.SpacingBetweenSlices = f"{sz:.6g}"
        ds.KVP = "120"
        ds.ConvolutionKernel = "PHANTOM"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = ny, nx
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.WindowCenter = "-600"
        ds.WindowWidth = "1500"
        ds.PixelData = stored[k].tobytes()
        p = out_dir / f"slice_{k:04d}.dcm"
        ds.save_as(p, enforce_file_format=True)
        paths.append(p)
    return paths


def parse_seeds(text: str) -> list[int]:
    """Phantom seeds from ``2000-2031`` / ``1,2,5`` / ``0-19,25`` (ranges inclusive)."""
    out: list[int] = []
    try:
        for part in str(text).split(","):
            a, _, b = part.partition("-")
            out += list(range(int(a), int(b) + 1)) if b else [int(a)]
    except ValueError:
        raise RadscribeInputError(f"seeds must look like 2000-2031 or 1,2,5, got {text!r}") from None
    return out


def _parse_shape(text: str) -> tuple[int, int, int]:
    try:
        parts = tuple(int(v) for v in str(text).split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 16 or max(parts) > 2048:
        raise RadscribeInputError(f"--shape must be z,y,x with each size in 16..2048, got {text!r}")
    return parts  # type: ignore[return-value]


def write_phantom(ph: Phantom, out: Path, *, seed: int, overwrite: bool = False) -> None:
    """Write OUT/dicom/*.dcm and OUT/truth.json atomically (nothing is left behind on failure)."""
    with atomic_dir(Path(out), overwrite=overwrite) as tmp:
        write_dicom_series(ph.volume_hu, ph.spacing, ph.origin, tmp / "dicom", seed=seed)
        (tmp / "truth.json").write_text(json.dumps(ph.truth, indent=2) + "\n")


def cli_phantom(args) -> int:
    """``radscribe phantom``: write OUT/dicom/*.dcm and OUT/truth.json atomically."""
    shape = _parse_shape(args.shape)
    check_output_dir(Path(args.out), args.overwrite)
    t0 = time.perf_counter()
    ph = make_phantom(args.seed, shape=shape, n_nodules=args.n_nodules, n_masses=getattr(args, "n_masses", 0))
    write_phantom(ph, Path(args.out), seed=args.seed, overwrite=args.overwrite)
    print(f"wrote {shape[0]} DICOM slices and truth.json ({len(ph.truth['nodules'])} nodules, "
          f"{len(ph.truth['masses'])} masses) to {args.out} "
          f"in {time.perf_counter() - t0:.1f} s")
    return 0
