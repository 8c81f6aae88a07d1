"""Time `radscribe analyze` end to end (fresh process each run) and record peak memory.

Cases: a 512x512x130 phantom chest CT (DICOM series), optionally the same phantom with lung masses
(``--masses K``: the masks then go out as a DICOM SEG too) and, when ../shared/data is present, the
real 99-slice chest CT series. Each case runs ``--repeats`` times in a new Python process (so import time
and file reading are counted, as a user sees them); the peak resident memory of that process comes
from ``getrusage(RUSAGE_CHILDREN)``.

    .venv/bin/python benchmarks/analyze_speed.py --repeats 3 --out out/bench/analyze_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from radscribe.data.paths import shared_data_dir  # noqa: E402


def run_once(path: Path, out: Path) -> tuple[float, float, float, dict]:
    """One `radscribe analyze` in a child process: (wall s, CPU s, peak RSS MiB, the stage timings)."""
    cmd = [sys.executable, "-m", "radscribe", "analyze", str(path), "--out", str(out), "--overwrite"]
    t = time.perf_counter()
    # A fresh grandchild per run: RUSAGE_CHILDREN of this wrapper is that run's peak alone.
    wrapper = ("import resource,subprocess,sys,json;"
               "r=subprocess.run(sys.argv[1:]);"
               "u=resource.getrusage(resource.RUSAGE_CHILDREN);"
               "print(json.dumps({'rc':r.returncode,'maxrss_kib':u.ru_maxrss,'cpu_s':u.ru_utime+u.ru_stime}))")
    res = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t
    info = json.loads(res.stdout.strip().splitlines()[-1])
    if info["rc"] != 0:
        raise SystemExit(f"analyze failed on {path}:\n{res.stderr}")
    timings = json.loads((out / "findings.json").read_text())["timings_s"]
    return wall, info["cpu_s"], info["maxrss_kib"] / 1024.0, timings


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--masses", type=int, default=0, help="also time the phantom with this many lung masses")
    p.add_argument("--out", type=Path, default=ROOT / "out" / "bench" / "analyze_speed.json")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="radscribe-bench-"))
    cases: list[tuple[str, Path]] = []
    phantom = work / "phantom"
    subprocess.run([sys.executable, "-m", "radscribe", "phantom", "--out", str(phantom), "--seed", "101",
                    "--shape", "130,512,512"], check=True, cwd=ROOT)
    cases.append(("phantom 512x512x130 (DICOM series)", phantom / "dicom"))
    if args.masses:
        pm = work / "phantom_masses"
        subprocess.run([sys.executable, "-m", "radscribe", "phantom", "--out", str(pm), "--seed", "101",
                        "--shape", "130,512,512", "--n-masses", str(args.masses)], check=True, cwd=ROOT)
        cases.append((f"phantom 512x512x130 with {args.masses} masses (DICOM series)", pm / "dicom"))
    real = shared_data_dir() / "chest_ct_series" / "dicom"
    if real.is_dir():
        cases.append(("real chest CT 512x512x99 (DICOM series)", real))
    else:
        print(f"note: {real} absent; benchmarking the phantom only", file=sys.stderr)

    results = []
    for name, path in cases:
        walls, cpus, rss, stages = [], [], [], []
        for i in range(args.repeats):
            w, c, m, t = run_once(path, work / f"out-{len(results)}-{i}")
            walls.append(w)
            cpus.append(c)
            rss.append(m)
            stages.append(t)
        results.append({
            "case": name, "repeats": args.repeats,
            "wall_s_median": statistics.median(walls), "wall_s_all": walls,
            "cpu_s_median": statistics.median(cpus),
            "in_process_total_s_median": statistics.median(s["total"] for s in stages),
            "peak_rss_mib_max": max(rss),
            "stages_s_last": stages[-1],
        })

    table = Table(title="radscribe analyze: wall time and peak memory")
    for col in ("case", "wall s (median, new process)", "CPU s (user+sys)", "in-process s", "peak RSS MiB"):
        table.add_column(col)
    for r in results:
        table.add_row(r["case"], f"{r['wall_s_median']:.2f}", f"{r['cpu_s_median']:.2f}",
                      f"{r['in_process_total_s_median']:.2f}", f"{r['peak_rss_mib_max']:.0f}")
    Console().print(table)
    for r in results:
        print(r["case"], {k: round(v, 3) for k, v in r["stages_s_last"].items()})
    meta = {"machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
            "load_average_1_5_15": os.getloadavg(),
            "targets": {"wall_s": 6.0, "peak_rss_mib": 2048}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
