"""Nodule detection quality and speed on synthetic phantoms (radscribe.data.phantom).

For each seed: make a phantom, segment the lungs, detect nodules, and match detections to the
truth (a detection matches a nodule when their centres are within max(radius, 3 mm); each nodule
and each detection is used at most once, nearest first). Reports sensitivity for nodules >= 4 mm
(and by size and density), false positives per scan, centre and diameter errors (mm), density
accuracy and wall times; prints a table and writes JSON.

    python benchmarks/phantom_detection.py --seeds 0-19 --out /tmp/phantom_bench.json
    python benchmarks/phantom_detection.py --seeds 1000-1009 --dump-candidates /tmp/cands.json  # tuning

Optionally ``--real DIR`` also runs the pipeline on a real DICOM series folder and reports what it
finds (no truth there).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from radscribe.data.phantom import make_phantom
from radscribe.evaluate.phantom import match_tolerance_mm, match_to_truth
from radscribe.models.nodule_candidates import detect_nodules
from radscribe.preprocess.lung import segment_lungs


def parse_seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out += list(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def size_group(d: float) -> str:
    return "3-4mm" if d < 4 else "4-6mm" if d < 6 else "6-10mm" if d < 10 else "10-20mm"


def run_phantoms(seeds, shape, n_nodules, dump=None) -> dict:
    per_scan, nodules, dumped = [], [], []
    for seed in seeds:
        t0 = time.perf_counter()
        ph = make_phantom(seed, shape=shape, n_nodules=n_nodules)
        t1 = time.perf_counter()
        img = ph.to_image()
        c1 = time.process_time()
        lungs = segment_lungs(img)
        t2, c2 = time.perf_counter(), time.process_time()
        res = detect_nodules(img, lungs)
        t3, c3 = time.perf_counter(), time.process_time()
        truth = ph.truth["nodules"]
        cm = np.array([f.center_patient for f in res.findings]).reshape(-1, 3)
        pairs = match_to_truth(truth, cm)
        hit = {i: (j, d) for i, j, d in pairs}
        for i, n in enumerate(truth):
            row = {"seed": seed, "diameter_mm": n["diameter_mm"], "density": n["density"],
                   "touches_vessel": n["touches_vessel"], "found": i in hit}
            if i in hit:
                f = res.findings[hit[i][0]]
                row.update({"center_err_mm": hit[i][1],
                            "diam_err_mm": 0.5 * (f.long_axis + f.short_axis) - n["diameter_mm"],
                            "density_found": f.attributes["density"], "side_ok": f.side == n["side"],
                            "zone_ok": f.attributes["zone"] == n["zone"]})
            nodules.append(row)
        true_lung = sum(ph.truth["lung_volume_ml"].values())
        per_scan.append({"seed": seed, "fp": len(res.findings) - len(pairs), "n_candidates": len(res.candidates),
                         "lung_ml": lungs.volume_ml, "true_lung_ml": true_lung,
                         "t_phantom_s": t1 - t0, "t_segment_s": t2 - t1, "t_detect_s": t3 - t2,
                         "cpu_segment_s": c2 - c1, "cpu_detect_s": c3 - c2})
        if dump is not None:
            for c in res.candidates:
                if "mean_diameter_mm" not in c["features"]:
                    continue
                cv = np.array(c["features"]["center_voxel"])
                cp = img.voxel_to_patient(cv)
                lab = any(np.linalg.norm(cp - np.array(n["center_patient"])) <= match_tolerance_mm(n)
                          for n in truth)
                dumped.append({"seed": seed, "nodule": bool(lab), "reason": c["reason"], **c["features"]})
        print(f"seed {seed}: {sum(1 for r in nodules if r['seed'] == seed and r['found'])}/{len(truth)} found, "
              f"{per_scan[-1]['fp']} FP, segment {t2 - t1:.2f} s (cpu {c2 - c1:.2f}), detect {t3 - t2:.2f} s "
              f"(cpu {c3 - c2:.2f})", file=sys.stderr)
    if dump is not None:
        Path(dump).write_text(json.dumps(dumped))
    return summarise(per_scan, nodules)


def summarise(per_scan, nodules) -> dict:
    def sens(rows):
        return {"n": len(rows), "found": sum(r["found"] for r in rows),
                "sensitivity": round(sum(r["found"] for r in rows) / len(rows), 3) if rows else None}

    ge4 = [r for r in nodules if r["diameter_mm"] >= 4]
    found = [r for r in nodules if r["found"]]
    solid5 = [r for r in found if r["density"] == "solid" and r["diameter_mm"] >= 5]
    out = {
        "n_scans": len(per_scan), "n_nodules": len(nodules),
        "sensitivity_ge4mm": sens(ge4),
        "by_size": {g: sens([r for r in nodules if size_group(r["diameter_mm"]) == g])
                    for g in ("3-4mm", "4-6mm", "6-10mm", "10-20mm")},
        "by_density": {d: sens([r for r in ge4 if r["density"] == d])
                       for d in ("solid", "part_solid", "ground_glass", "calcified")},
        "touching_vessel_ge4mm": sens([r for r in ge4 if r["touches_vessel"]]),
        "fp_per_scan_mean": float(np.mean([s["fp"] for s in per_scan])),
        "fp_per_scan_max": int(max(s["fp"] for s in per_scan)),
        "center_err_mm_median": float(np.median([r["center_err_mm"] for r in found])) if found else None,
        "center_err_mm_p90": float(np.percentile([r["center_err_mm"] for r in found], 90)) if found else None,
        "diam_abs_err_mm_median": float(np.median([abs(r["diam_err_mm"]) for r in found])) if found else None,
        "diam_abs_err_mm_solid_ge5_median": float(np.median([abs(r["diam_err_mm"]) for r in solid5])) if solid5 else None,
        "diam_abs_err_mm_solid_ge5_max": float(np.max([abs(r["diam_err_mm"]) for r in solid5])) if solid5 else None,
        "density_accuracy": round(float(np.mean([r["density_found"] == r["density"] for r in found])), 3) if found else None,
        "side_accuracy": round(float(np.mean([r["side_ok"] for r in found])), 3) if found else None,
        "zone_accuracy": round(float(np.mean([r["zone_ok"] for r in found])), 3) if found else None,
        "lung_volume_rel_err_mean": float(np.mean([abs(s["lung_ml"] - s["true_lung_ml"]) / s["true_lung_ml"] for s in per_scan])),
        "t_phantom_s_mean": float(np.mean([s["t_phantom_s"] for s in per_scan])),
        "t_segment_s_mean": float(np.mean([s["t_segment_s"] for s in per_scan])),
        "t_detect_s_mean": float(np.mean([s["t_detect_s"] for s in per_scan])),
        "t_detect_s_max": float(np.max([s["t_detect_s"] for s in per_scan])),
        "cpu_segment_s_mean": float(np.mean([s["cpu_segment_s"] for s in per_scan])),
        "cpu_detect_s_mean": float(np.mean([s["cpu_detect_s"] for s in per_scan])),
        "cpu_detect_s_max": float(np.max([s["cpu_detect_s"] for s in per_scan])),
        "per_scan": per_scan, "nodules": nodules,
    }
    return out


def print_table(s: dict) -> None:
    g = s["sensitivity_ge4mm"]
    print(f"scans {s['n_scans']}, nodules {s['n_nodules']}")
    print(f"sensitivity >= 4 mm: {g['found']}/{g['n']} = {g['sensitivity']}")
    for name, d in list(s["by_size"].items()) + list(s["by_density"].items()):
        print(f"  {name:14s} {d['found']:3d}/{d['n']:3d}  {d['sensitivity']}")
    tv = s["touching_vessel_ge4mm"]
    print(f"  touching vessel {tv['found']}/{tv['n']} {tv['sensitivity']}")
    print(f"FP per scan: mean {s['fp_per_scan_mean']:.2f}, max {s['fp_per_scan_max']}")
    for k in ("center_err_mm_median", "center_err_mm_p90", "diam_abs_err_mm_median",
              "diam_abs_err_mm_solid_ge5_median", "diam_abs_err_mm_solid_ge5_max", "density_accuracy",
              "side_accuracy", "zone_accuracy", "lung_volume_rel_err_mean", "t_phantom_s_mean",
              "t_segment_s_mean", "t_detect_s_mean", "t_detect_s_max", "cpu_segment_s_mean",
              "cpu_detect_s_mean", "cpu_detect_s_max"):
        v = s[k]
        print(f"{k:34s} {v:.3f}" if isinstance(v, float) else f"{k:34s} {v}")


def run_real(folder: Path) -> dict:
    """Pipeline on a real DICOM series folder (uses radscribe.io.loader when present)."""
    try:
        from radscribe.io.loader import load_study  # written by another part of the project
        img = load_study(folder).image
        reader = "radscribe.io.loader.load_study"
    except ImportError:
        img = read_dicom_folder(folder)
        reader = "pydicom fallback in this benchmark"
    t0, c0 = time.perf_counter(), time.process_time()
    lungs = segment_lungs(img)
    t1, c1 = time.perf_counter(), time.process_time()
    res = detect_nodules(img, lungs)
    t2, c2 = time.perf_counter(), time.process_time()
    from collections import Counter
    return {"reader": reader, "shape": list(img.shape), "spacing": list(img.spacing),
            "lung_ml": lungs.volume_ml, "left_ml": lungs.left_ml, "right_ml": lungs.right_ml,
            "notes": list(lungs.notes), "t_segment_s": t1 - t0, "t_detect_s": t2 - t1,
            "cpu_segment_s": c1 - c0, "cpu_detect_s": c2 - c1,
            "n_candidates": len(res.candidates), "reasons": dict(Counter(c["reason"] for c in res.candidates)),
            "findings": [f.to_dict() for f in res.findings]}


def read_dicom_folder(folder: Path):
    """Minimal pydicom reader (one series, sorted along the slice normal) -> Image in HU."""
    import pydicom

    from radscribe.io.image import Image

    dss = [pydicom.dcmread(p) for p in sorted(Path(folder).glob("*.dcm"))]
    iop = np.array(dss[0].ImageOrientationPatient, float)
    r, c = iop[:3], iop[3:]
    n = np.cross(r, c)
    dss.sort(key=lambda d: float(np.dot(n, np.array(d.ImagePositionPatient, float))))
    arr = np.stack([d.pixel_array.astype(np.float32) * float(getattr(d, "RescaleSlope", 1))
                    + float(getattr(d, "RescaleIntercept", 0)) for d in dss])
    p0 = np.array(dss[0].ImagePositionPatient, float)
    p1 = np.array(dss[-1].ImagePositionPatient, float)
    sz = float(np.dot(n, p1 - p0)) / max(len(dss) - 1, 1)
    ps = [float(v) for v in dss[0].PixelSpacing]
    return Image(arr, (sz, ps[0], ps[1]), tuple(p0), np.stack([r, c, n], 1), modality="CT", units="HU",
                 body_part=str(getattr(dss[0], "BodyPartExamined", "")) or None, source=str(folder),
                 source_format="dicom")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0-19")
    ap.add_argument("--shape", default="130,512,512")
    ap.add_argument("--n-nodules", type=int, default=6)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--dump-candidates", type=Path)
    ap.add_argument("--real", type=Path, help="also run on this real DICOM series folder")
    a = ap.parse_args(argv)
    shape = tuple(int(v) for v in a.shape.split(","))
    t0 = time.perf_counter()
    s = run_phantoms(parse_seeds(a.seeds), shape, a.n_nodules, a.dump_candidates)
    s["wall_s"] = time.perf_counter() - t0
    s["command"] = " ".join(["python", "benchmarks/phantom_detection.py"] + (argv or sys.argv[1:]))
    print_table(s)
    if a.real:
        s["real"] = run_real(a.real)
        r = s["real"]
        print(f"real: lungs {r['lung_ml']:.0f} ml (L {r['left_ml']:.0f}, R {r['right_ml']:.0f}), "
              f"{r['n_candidates']} candidates, {len(r['findings'])} kept, segment {r['t_segment_s']:.2f} s, "
              f"detect {r['t_detect_s']:.2f} s")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(s, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
