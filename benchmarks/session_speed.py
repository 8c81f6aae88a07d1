"""Load once, analyse many: 20 studies through one ``Analyzer`` session vs 20 cold ``radscribe analyze`` calls.

    OMP_NUM_THREADS=1 taskset -c 1 .venv/bin/python benchmarks/session_speed.py --json out/bench/session_speed.json

Studies (default 20): 2D images from the official test folders of chest_xray_pneumonia, brain_tumor_mri
and ct_kidney (in ../shared/data), interleaved per domain, plus small synthetic chest CT phantoms
written by ``radscribe phantom`` (DICOM series). The session runs in this process: its first study
pays the imports and each model's loading, later ones only the work. Every cold call is a new
``python -m radscribe analyze PATH --out DIR`` process (start-up, imports, loading, work, all
outputs), timed around the process; its CPU time comes from ``RUSAGE_CHILDREN``. Wall and CPU
seconds are reported, with the load average, because other jobs on a shared machine inflate wall.

Target (issue 11): a 2D study in a warm session >= 3x faster than a cold CLI call for a 2D image.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from radscribe.data.paths import dataset_dir  # noqa: E402

SOURCES = (("chest_xray_pneumonia", "test"), ("brain_tumor_mri", "Testing"), ("ct_kidney", "Testing"))


def pick_images(n_per_domain: int) -> list[list[Path]]:
    out = []
    for ds, sub in SOURCES:
        files = sorted(p for p in (dataset_dir(ds) / sub).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        step = max(1, len(files) // n_per_domain)
        out.append(files[::step][:n_per_domain])
    return out


def cold_call(path: Path, out: Path) -> tuple[float, float]:
    """(wall s, CPU s) of one ``radscribe analyze`` in a new process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "radscribe", "analyze", str(path), "--out", str(out)],
                       capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"cold analyze failed on {path}:\n{r.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="number of studies (default 20)")
    ap.add_argument("--phantoms", type=int, default=2, help="how many of them are CT phantoms (default 2)")
    ap.add_argument("--phantom-shape", default="48,256,256", help="z,y,x of each phantom (default 48,256,256)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="radscribe-session-"))
    n2d = a.n - a.phantoms
    per = pick_images(-(-n2d // len(SOURCES)))
    images = [p for group in zip(*per) for p in group][:n2d]     # interleaved: cxr, mri, kidney, cxr, ...
    # the second study is a 2D image of the same domain as the first: its model is loaded, nothing else
    images = [images[0], images[len(SOURCES)]] + [p for i, p in enumerate(images) if i not in (0, len(SOURCES))]
    phantoms = []
    for k in range(a.phantoms):
        d = work / f"phantom{k}"
        subprocess.run([sys.executable, "-m", "radscribe", "phantom", "--out", str(d), "--seed", str(200 + k),
                        "--shape", a.phantom_shape], check=True, cwd=ROOT, capture_output=True)
        phantoms.append(d / "dicom")
    studies = [(p, "2D") for p in images]
    for k, p in enumerate(phantoms):  # spread the CT studies through the run
        studies.insert(min(len(studies), 4 + 7 * k), (p, "CT"))

    load_before = os.getloadavg()
    t0, c0 = time.perf_counter(), time.process_time()
    from radscribe.analyze import Analyzer

    session = Analyzer()
    import_s = time.perf_counter() - t0
    warm = []
    for i, (path, kind) in enumerate(studies):
        t, c = time.perf_counter(), time.process_time()
        res = session.analyze(path, work / "session" / f"{i:02d}")
        warm.append({"study": str(path.relative_to(path.parents[2])), "kind": kind,
                     "wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - c,
                     "detectors": list(res.detectors_run), "load_model_s": res.timings.get("load_model", 0.0)})
    session_wall, session_cpu = time.perf_counter() - t0, time.process_time() - c0

    cold = []
    for i, (path, kind) in enumerate(studies):
        w, c = cold_call(path, work / "cold" / f"{i:02d}")
        cold.append({"kind": kind, "wall_s": w, "cpu_s": c})
    load_after = os.getloadavg()

    def med(rows, key, kind, skip_first_of_model=False):
        seen: set[str] = set()
        vals = []
        for r in rows:
            if r["kind"] != kind:
                continue
            first = skip_first_of_model and not seen.issuperset(r.get("detectors", []))
            seen.update(r.get("detectors", []))
            if not first:
                vals.append(r[key])
        return statistics.median(vals) if vals else float("nan")

    second = warm[1]
    summary = {
        "studies": len(studies), "n_2d": sum(k == "2D" for _, k in studies), "n_ct": a.phantoms,
        "phantom_shape": a.phantom_shape,
        "session_import_s": round(import_s, 3),
        "session_total_wall_s": round(session_wall, 2), "session_total_cpu_s": round(session_cpu, 2),
        "cold_total_wall_s": round(sum(r["wall_s"] for r in cold), 2),
        "cold_total_cpu_s": round(sum(r["cpu_s"] for r in cold), 2),
        "first_study_wall_s": round(warm[0]["wall_s"], 3),
        "second_study_wall_s": round(second["wall_s"], 3), "second_study_cpu_s": round(second["cpu_s"], 3),
        "warm_2d_median_wall_s": round(med(warm, "wall_s", "2D", True), 3),
        "warm_2d_median_cpu_s": round(med(warm, "cpu_s", "2D", True), 3),
        "warm_ct_median_wall_s": round(med(warm, "wall_s", "CT"), 3),
        "cold_2d_median_wall_s": round(med(cold, "wall_s", "2D"), 3),
        "cold_2d_median_cpu_s": round(med(cold, "cpu_s", "2D"), 3),
        "cold_ct_median_wall_s": round(med(cold, "wall_s", "CT"), 3),
    }
    summary["ratio_cold_2d_over_second_study_wall"] = round(summary["cold_2d_median_wall_s"] / second["wall_s"], 2)
    summary["ratio_cold_2d_over_second_study_cpu"] = round(summary["cold_2d_median_cpu_s"] / second["cpu_s"], 2)
    summary["ratio_cold_2d_over_warm_2d_median_wall"] = round(
        summary["cold_2d_median_wall_s"] / summary["warm_2d_median_wall_s"], 2)
    summary["ratio_cold_2d_over_warm_2d_median_cpu"] = round(
        summary["cold_2d_median_cpu_s"] / summary["warm_2d_median_cpu_s"], 2)
    out = {"summary": summary, "session": warm, "cold": cold,
           "load_average_1_5_15_before": load_before, "load_average_1_5_15_after": load_after,
           "machine": f"{platform.machine()}, {os.cpu_count()} cores visible, "
                      f"affinity {sorted(os.sched_getaffinity(0))}, Python {platform.python_version()}"}
    print(json.dumps(summary, indent=1))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
