"""``make demo``: analyse a synthetic chest CT and the bundled sample images, print where it all went.

Runs on a fresh clone with no dataset: the chest CT is a phantom written as a real DICOM series,
the 2D studies are the attributed samples in ``examples/``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from radscribe.errors import RadscribeInputError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm", ".nii", ".gz", ".mha", ".mhd", ".nrrd"}


def _phantom_hits(analysis, truth_path: Path) -> str:
    """'found 3 of 4 true nodules, 0 false positive(s)', matched as the phantom benchmark matches."""
    import json

    from radscribe.evaluate.phantom import match_to_truth

    truth = json.loads(truth_path.read_text())["nodules"]
    found = [f.center_patient for f in analysis.findings
             if f.present and f.kind == "nodule" and f.center_patient is not None]
    hits = len(match_to_truth(truth, found))
    return f"found {hits} of {len(truth)} true nodules, {len(found) - hits} false positive(s)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("out/demo"))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from radscribe.analyze import Analyzer
    from radscribe.data.phantom import make_phantom, write_phantom

    console = Console(stderr=True)
    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)  # the demo folder is the demo's own; re-running replaces it
    out.mkdir(parents=True)
    rows = []
    try:
        with console.status("writing a synthetic chest CT (DICOM series with known nodules)..."):
            phantom_dir = out / "phantom"
            write_phantom(make_phantom(args.seed), phantom_dir, seed=args.seed)
        studies = [("phantom chest CT (DICOM series)", phantom_dir / "dicom")]
        studies += [(p.name, p) for p in sorted(EXAMPLES.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
        session = Analyzer()  # one session: each model loads once for all the studies
        for label, path in studies:
            with console.status(f"analysing {label}..."):
                t = time.perf_counter()
                name = "phantom-analysis" if path.parent == phantom_dir else path.stem
                a = session.analyze(path, out / name, overwrite=True)
                dt = time.perf_counter() - t
            what = ", ".join(
                (f.kind if f.present else f"no {f.kind}")
                + (f" {f.long_axis:.0f}{f.size_unit}" if f.present and f.long_axis else "")
                + f" ({f.confidence:.2f})" for f in a.findings) or "no finding"
            if path.parent == phantom_dir:
                what += f"; {_phantom_hits(a, phantom_dir / 'truth.json')}"
            rows.append((label, f"{a.study.modality} {a.study.body_region}",
                         ", ".join(a.detectors_run) or "none applicable", what, f"{dt:.1f}", f"{name}/"))
    except RadscribeInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    table = Table(title=f"radscribe demo (outputs under {out}/)")
    for col in ("study", "recognized as", "detectors", "findings (confidence)", "s", "folder"):
        table.add_column(col)
    for r in rows:
        table.add_row(*r)
    Console(width=max(140, Console().width)).print(table)
    print(f"\nPhantom truth: {phantom_dir / 'truth.json'}")
    print(f"Each output folder holds findings.json, report.md and overlays/*.png, e.g. "
          f"{out / 'phantom-analysis' / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
