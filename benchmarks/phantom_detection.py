"""Nodule and mass detection quality and speed on synthetic phantoms (radscribe.data.phantom).

For each seed: make a phantom, segment the lungs (with the lesion repair), detect masses and nodules
(:func:`radscribe.models.builtin_detectors.run_lung_lesions`, what ``radscribe analyze`` runs), and
match detections to the truth (a detection matches a nodule when their centres are within
max(radius, 3 mm); each nodule and each detection is used at most once, nearest first). Reports
sensitivity for nodules >= 4 mm (and by size and density), the recall of stage 1 alone (a candidate
of any kind within the tolerance, before any stage-2 rejection), false positives per scan, centre and
diameter errors (mm), density accuracy and wall times; with ``--n-masses`` the masses separately
(found, long-axis error %, side / zone / abuts, by site), masses reported on mass-free phantoms, and
the volume the lesion repair added outside the masses (leak, ml). Prints a table and writes JSON.

    python benchmarks/phantom_detection.py --seeds 0-19 --out /tmp/phantom_bench.json
    python benchmarks/phantom_detection.py --seeds 0-19 --n-masses 3 --out /tmp/phantom_masses.json
    python benchmarks/phantom_detection.py --seeds 1000-1009 --dump-candidates /tmp/cands.json  # tuning

Optionally ``--real DIR`` also runs the pipeline on a real DICOM series folder and reports what it
finds (no truth there).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from radscribe.data.phantom import make_phantom, parse_seeds
from radscribe.evaluate.phantom import match_tolerance_mm, match_to_truth
from radscribe.models.builtin_detectors import run_lung_lesions


def size_group(d: float) -> str:
    return "3-4mm" if d < 4 else "4-6mm" if d < 6 else "6-10mm" if d < 10 else "10-20mm"


def _near(img, candidates, n) -> tuple[bool, bool]:
    """(any stage-1 candidate within the nodule's tolerance, any that reached stage 2 there)."""
    tol, c = match_tolerance_mm(n), np.array(n["center_patient"])
    s1 = s2 = False
    for cand in candidates:
        if np.linalg.norm(img.voxel_to_patient(np.array(cand["features"]["center_voxel"])) - c) <= tol:
            s1 = True
            s2 = s2 or not cand["reason"].startswith("stage 1")
    return s1, s2


def mass_rows(seed, truth_masses, mass_findings, lungs, labels) -> list[dict]:
    """One row per true mass: found, axis errors (%), side / zone / abuts correct, mask coverage."""
    rows, used = [], set()
    for k, m in enumerate(truth_masses, start=1):
        c = np.array(m["center_patient"])
        best = None
        for j, f in enumerate(mass_findings):
            d = float(np.linalg.norm(np.array(f.center_patient) - c))
            if j not in used and d <= max(m["long_axis_mm"] / 2, 10.0) and (best is None or d < best[0]):
                best = (d, j)
        row = {"seed": seed, "site": m["site"], "margin": m["margin"], "long_axis_mm": m["long_axis_mm"],
               "found": best is not None,
               "mask_coverage": float(lungs.mask[labels == k].mean()) if labels is not None else None}
        if best is not None:
            used.add(best[1])
            f = mass_findings[best[1]]
            row.update({"center_err_mm": best[0], "kind_found": f.kind,
                        "long_err_pct": 100 * (f.long_axis - m["long_axis_mm"]) / m["long_axis_mm"],
                        "short_err_pct": 100 * (f.short_axis - m["short_axis_mm"]) / m["short_axis_mm"],
                        "cc_err_pct": 100 * (f.attributes["craniocaudal_mm"] - m["craniocaudal_mm"]) / m["craniocaudal_mm"],
                        "volume_err_pct": 100 * (f.volume - m["volume_mm3"]) / m["volume_mm3"],
                        "side_ok": f.side == m["side"], "zone_ok": f.attributes["zone"] == m["zone"],
                        "abuts_ok": f.attributes["abuts"] == m["abuts"], "abuts_found": f.attributes["abuts"],
                        "abuts_true": m["abuts"]})
        rows.append(row)
    return rows


def run_phantoms(seeds, shape, n_nodules, dump=None, n_masses=0, rules=None) -> dict:
    per_scan, nodules, masses, dumped = [], [], [], []
    for seed in seeds:
        t0 = time.perf_counter()
        ph = make_phantom(seed, shape=shape, n_nodules=n_nodules, n_masses=n_masses)
        t1 = time.perf_counter()
        img = ph.to_image()
        c1 = time.process_time()
        lungs, mres, res, (t_seg, t_mass, t_nod) = run_lung_lesions(img, rules=rules)
        c3 = time.process_time()
        truth = ph.truth["nodules"]
        cm = np.array([f.center_patient for f in res.findings]).reshape(-1, 3)
        pairs = match_to_truth(truth, cm)
        hit = {i: (j, d) for i, j, d in pairs}
        for i, n in enumerate(truth):
            s1, s2 = _near(img, res.candidates, n)
            row = {"seed": seed, "diameter_mm": n["diameter_mm"], "density": n["density"],
                   "touches_vessel": n["touches_vessel"], "found": i in hit, "stage1": s1, "stage2": s2}
            if i in hit:
                f = res.findings[hit[i][0]]
                row.update({"center_err_mm": hit[i][1],
                            "diam_err_mm": 0.5 * (f.long_axis + f.short_axis) - n["diameter_mm"],
                            "density_found": f.attributes["density"], "side_ok": f.side == n["side"],
                            "zone_ok": f.attributes["zone"] == n["zone"]})
            nodules.append(row)
        mrows = mass_rows(seed, ph.truth["masses"], mres.findings, lungs, ph.mass_labels)
        masses += mrows
        true_lung = sum(ph.truth["lung_volume_ml"].values())
        vox_ml = float(np.prod(img.spacing)) / 1000.0
        rep = lungs.repaired
        leak = 0.0
        if rep is not None:  # added voxels further than ~2 mm in-plane / one slice from a mass body
            near = np.zeros(rep.shape, bool) if ph.mass_labels is None else ph.mass_labels > 0
            if ph.mass_labels is not None:
                it = max(1, int(round(2.0 / img.spacing[1])))
                near = ndi.binary_dilation(near, structure=np.ones((1, 3, 3), bool), iterations=it)
                near = ndi.binary_dilation(near, structure=np.ones((3, 1, 1), bool))
            leak = float((rep & ~near).sum()) * vox_ml
        per_scan.append({"seed": seed, "fp": len(res.findings) - len(pairs), "n_candidates": len(res.candidates),
                         "n_stage1_only": sum(c["reason"].startswith("stage 1 only") for c in res.candidates),
                         "n_masses_reported": len(mres.findings),
                         "mass_fp": len(mres.findings) - sum(r["found"] for r in mrows),
                         "repair_ml": 0.0 if rep is None else float(rep.sum()) * vox_ml, "repair_leak_ml": leak,
                         "lung_ml": lungs.volume_ml, "true_lung_ml": true_lung,
                         "t_phantom_s": t1 - t0, "t_segment_s": t_seg, "t_mass_s": t_mass, "t_detect_s": t_nod,
                         "cpu_segment_mass_detect_s": c3 - c1})
        if dump is not None:
            for c in res.candidates:
                cv = np.array(c["features"]["center_voxel"])
                cp = img.voxel_to_patient(cv)
                ids = [i for i, n in enumerate(truth)
                       if np.linalg.norm(cp - np.array(n["center_patient"])) <= match_tolerance_mm(n)]
                dumped.append({"seed": seed, "nodule": bool(ids), "nodule_index": ids[0] if ids else -1,
                               "reason": c["reason"], **c["features"]})
            dumped.append({"seed": seed, "truth": truth})
        print(f"seed {seed}: {sum(1 for r in nodules if r['seed'] == seed and r['found'])}/{len(truth)} found, "
              f"{per_scan[-1]['fp']} FP, masses {sum(r['found'] for r in mrows)}/{len(mrows)} "
              f"(+{per_scan[-1]['mass_fp']} FP), segment {t_seg:.2f} s, masses {t_mass:.2f} s, "
              f"nodules {t_nod:.2f} s (cpu all {c3 - c1:.2f})", file=sys.stderr)
    if dump is not None:
        Path(dump).write_text(json.dumps(dumped))
    return summarise(per_scan, nodules, masses)


def summarise(per_scan, nodules, masses=()) -> dict:
    def sens(rows, key="found"):
        return {"n": len(rows), "found": sum(r[key] for r in rows),
                "sensitivity": round(sum(r[key] for r in rows) / len(rows), 3) if rows else None}

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
        "stage1_recall_ge4mm": sens(ge4, "stage1"),
        "stage1_recall_by_size": {g: sens([r for r in nodules if size_group(r["diameter_mm"]) == g], "stage1")
                                  for g in ("3-4mm", "4-6mm", "6-10mm", "10-20mm")},
        "stage1_recall_by_density": {d: sens([r for r in ge4 if r["density"] == d], "stage1")
                                     for d in ("solid", "part_solid", "ground_glass", "calcified")},
        "stage2_reached_ge4mm": sens(ge4, "stage2"),
        "stage1_only_candidates_per_scan": float(np.mean([s["n_stage1_only"] for s in per_scan])),
        "candidates_per_scan": float(np.mean([s["n_candidates"] for s in per_scan])),
        "masses": summarise_masses(masses, per_scan),
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
        "t_mass_s_mean": float(np.mean([s["t_mass_s"] for s in per_scan])),
        "t_detect_s_mean": float(np.mean([s["t_detect_s"] for s in per_scan])),
        "t_detect_s_max": float(np.max([s["t_detect_s"] for s in per_scan])),
        "cpu_segment_mass_detect_s_mean": float(np.mean([s["cpu_segment_mass_detect_s"] for s in per_scan])),
        "cpu_segment_mass_detect_s_max": float(np.max([s["cpu_segment_mass_detect_s"] for s in per_scan])),
        "per_scan": per_scan, "nodules": nodules, "mass_rows": list(masses),
    }
    return out


def summarise_masses(all_rows, per_scan) -> dict:
    """Masses = true lesions with a long axis > 30 mm; the phantom's few that the wall clips to <= 30 mm
    are counted apart (found as a nodule or a mass)."""
    masses = [r for r in all_rows if r["long_axis_mm"] > 30.0]
    small = [r for r in all_rows if r["long_axis_mm"] <= 30.0]
    found = [r for r in masses if r["found"]]
    def pct(rows, key):
        v = [abs(r[key]) for r in rows]
        return {"median": round(float(np.median(v)), 2), "max": round(float(np.max(v)), 2)} if v else None
    out = {"n": len(masses), "found": len(found),
           "reported_per_scan_mean": float(np.mean([s["n_masses_reported"] for s in per_scan])),
           "fp_total": int(sum(s["mass_fp"] for s in per_scan)),
           "found_as_mass": sum(r.get("kind_found") == "mass" for r in found),
           "clipped_to_le30mm": {"n": len(small), "found": sum(r["found"] for r in small),
                                 "found_as_nodule": sum(r.get("kind_found") == "nodule" for r in small)},
           "long_axis_abs_err_pct": pct(found, "long_err_pct"),
           "long_axis_within_10pct": sum(abs(r["long_err_pct"]) <= 10 for r in found),
           "short_axis_abs_err_pct": pct(found, "short_err_pct"),
           "craniocaudal_abs_err_pct": pct(found, "cc_err_pct"), "volume_abs_err_pct": pct(found, "volume_err_pct"),
           "side_ok": sum(r["side_ok"] for r in found), "zone_ok": sum(r["zone_ok"] for r in found),
           "abuts_ok": sum(r["abuts_ok"] for r in found),
           "mask_coverage_min": min((r["mask_coverage"] for r in masses if r["mask_coverage"] is not None), default=None),
           "repair_leak_ml_mean": float(np.mean([s["repair_leak_ml"] for s in per_scan])),
           "repair_leak_ml_max": float(np.max([s["repair_leak_ml"] for s in per_scan])),
           "by_site": {}}
    for site in ("pleura", "mediastinum", "hilum"):
        rows = [r for r in masses if r["site"] == site]
        f = [r for r in rows if r["found"]]
        out["by_site"][site] = {"n": len(rows), "found": len(f), "long_axis_abs_err_pct": pct(f, "long_err_pct"),
                                "abuts_ok": sum(r["abuts_ok"] for r in f)}
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
    g1 = s["stage1_recall_ge4mm"]
    print(f"stage-1 recall >= 4 mm: {g1['found']}/{g1['n']} = {g1['sensitivity']} "
          f"({s['candidates_per_scan']:.0f} candidates/scan, {s['stage1_only_candidates_per_scan']:.0f} stage-1 only)")
    for name, d in list(s["stage1_recall_by_size"].items()) + list(s["stage1_recall_by_density"].items()):
        print(f"  stage 1 {name:14s} {d['found']:3d}/{d['n']:3d}  {d['sensitivity']}")
    m = s["masses"]
    print(f"masses > 30 mm: {m['found']}/{m['n']} found ({m['found_as_mass']} as mass); clipped to <= 30 mm: "
          f"{m['clipped_to_le30mm']}")
    print(f"masses: {m['found']}/{m['n']} found, {m['fp_total']} reported without a true mass, long axis within "
          f"10 %: {m['long_axis_within_10pct']}, |error| % {m['long_axis_abs_err_pct']}, side/zone/abuts ok "
          f"{m['side_ok']}/{m['zone_ok']}/{m['abuts_ok']}, mask coverage min {m['mask_coverage_min']}, "
          f"repair leak ml mean {m['repair_leak_ml_mean']:.1f} max {m['repair_leak_ml_max']:.1f}")
    for site, d in m["by_site"].items():
        print(f"  {site:12s} {d['found']}/{d['n']}  long-axis |err| % {d['long_axis_abs_err_pct']}  abuts ok {d['abuts_ok']}")
    for k in ("center_err_mm_median", "center_err_mm_p90", "diam_abs_err_mm_median",
              "diam_abs_err_mm_solid_ge5_median", "diam_abs_err_mm_solid_ge5_max", "density_accuracy",
              "side_accuracy", "zone_accuracy", "lung_volume_rel_err_mean", "t_phantom_s_mean",
              "t_segment_s_mean", "t_mass_s_mean", "t_detect_s_mean", "t_detect_s_max",
              "cpu_segment_mass_detect_s_mean", "cpu_segment_mass_detect_s_max"):
        v = s[k]
        print(f"{k:34s} {v:.3f}" if isinstance(v, float) else f"{k:34s} {v}")


def run_real(folder: Path, rules=None) -> dict:
    """Pipeline on a real DICOM series folder (uses radscribe.io.loader when present)."""
    try:
        from radscribe.io.loader import load_study  # written by another part of the project
        img = load_study(folder).image
        reader = "radscribe.io.loader.load_study"
    except ImportError:
        img = read_dicom_folder(folder)
        reader = "pydicom fallback in this benchmark"
    c0 = time.process_time()
    lungs, mres, res, (t_seg, t_mass, t_nod) = run_lung_lesions(img, rules=rules)
    c1 = time.process_time()
    from collections import Counter
    vox_ml = float(np.prod(img.spacing)) / 1000.0
    return {"reader": reader, "shape": list(img.shape), "spacing": list(img.spacing),
            "lung_ml": lungs.volume_ml, "left_ml": lungs.left_ml, "right_ml": lungs.right_ml,
            "repair_ml": 0.0 if lungs.repaired is None else float(lungs.repaired.sum()) * vox_ml,
            "notes": list(lungs.notes), "t_segment_s": t_seg, "t_mass_s": t_mass, "t_detect_s": t_nod,
            "cpu_segment_mass_detect_s": c1 - c0,
            "n_candidates": len(res.candidates), "reasons": dict(Counter(c["reason"] for c in res.candidates)),
            "mass_candidates": mres.candidates,
            "masses": [f.to_dict() for f in mres.findings], "findings": [f.to_dict() for f in res.findings]}


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
    ap.add_argument("--n-masses", type=int, default=0)
    ap.add_argument("--rules", help="JSON object overriding nodule_candidates.RULES (e.g. the stage-1 thresholds)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--dump-candidates", type=Path)
    ap.add_argument("--real", type=Path, help="also run on this real DICOM series folder")
    a = ap.parse_args(argv)
    shape = tuple(int(v) for v in a.shape.split(","))
    t0 = time.perf_counter()
    rules = json.loads(a.rules) if a.rules else None
    s = run_phantoms(parse_seeds(a.seeds), shape, a.n_nodules, a.dump_candidates, a.n_masses, rules)
    s["wall_s"] = time.perf_counter() - t0
    s["command"] = " ".join(["python", "benchmarks/phantom_detection.py"] + (argv or sys.argv[1:]))
    s["load_average_at_end"] = list(os.getloadavg())
    print_table(s)
    if a.real:
        s["real"] = run_real(a.real, rules)
        r = s["real"]
        print(f"real: lungs {r['lung_ml']:.0f} ml (L {r['left_ml']:.0f}, R {r['right_ml']:.0f}), repair added "
              f"{r['repair_ml']:.1f} ml, {len(r['masses'])} masses, {r['n_candidates']} candidates, "
              f"{len(r['findings'])} nodules kept, segment {r['t_segment_s']:.2f} s, masses {r['t_mass_s']:.2f} s, "
              f"nodules {r['t_detect_s']:.2f} s")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(s, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
