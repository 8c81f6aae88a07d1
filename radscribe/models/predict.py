"""``radscribe predict --model NAME --out FILE.csv PATH...``: calibrated probabilities per image as CSV.

Each PATH is a file or a folder (searched recursively, hidden files skipped). Every file is read
with :func:`radscribe.io.loader.load_study` and routed (:mod:`radscribe.models.routing`): a file
that cannot be read, or that is outside the model's domain (another modality/region, a volume for
a 2D model, a 2D image for a 3D model, content that the domain classifier does not recognise), is
skipped with one ``warning: <path>: <reason>`` line on stderr. The CSV has one row per classified
image - ``path,label,p_<label>...`` in the registry's label order - and is written atomically.
Exit 0 when at least one image was classified; otherwise ``error:`` and exit 2.

Volumes are (z, y, x) arrays as :mod:`radscribe.io.volume` reads them (NIfTI voxel (i, j, k) -> (k, j, i)).
ct-adrenal3d does not depend on that order: it averages its logits over the 6 axis orders
(``CNN3D.tta``), having been trained on all 48 orders x flips (``augment: 3d-cube``).
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from radscribe.errors import RadscribeInputError

BATCH = 32


def expand_paths(paths: Sequence[Path]) -> list[Path]:
    """Files named directly plus every non-hidden file under named folders (sorted); missing path -> error."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise RadscribeInputError(f"no such file or folder: {p}")
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file()
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            out += files
        else:
            out.append(p)
    return out


def read_image(path: Path):
    """(Image, header dict) of one file via the io loader."""
    from radscribe.io.loader import load_study

    st = load_study(path)
    return st.image, st.header


def _recognition(image, header):
    from radscribe.preprocess.recognize import recognize

    return recognize(image, header)


def check_domain(name: str, image, header: dict) -> str | None:
    """None when model ``name`` applies to ``image``, else the human reason it does not."""
    from radscribe.models.routing import decide

    d = decide(image, _recognition(image, header))
    if name in d.models:
        return None
    mine = [r for r in d.skipped if r.startswith(name + " ")]
    return "; ".join(list(d.notes) + mine) or f"{name} does not apply to this image"


def predict_files(loaded, files: Iterable[Path], domain_check: bool = True, warn=None, progress: bool = True):
    """Yield (path, probs ndarray) for every file the model applies to; ``warn(path, reason)`` for the rest."""
    import torch
    from tqdm import tqdm

    warn = warn or (lambda p, r: print(f"warning: {p}: {r}", file=sys.stderr))
    pending: list[tuple[Path, Any]] = []

    def flush():
        if pending:
            probs = loaded.predict_proba(torch.stack([x for _, x in pending]))
            yield from ((p, pr) for (p, _), pr in zip(pending, probs))
            pending.clear()

    files = list(files)
    for f in tqdm(files, desc=f"predict {loaded.spec.name}", disable=not progress or len(files) < 20, leave=False):
        try:
            image, header = read_image(f)
            if domain_check:
                why = check_domain(loaded.spec.name, image, header)
                if why:
                    warn(f, f"skipped, out of domain: {why}")
                    continue
            pending.append((f, loaded.preprocess(image)))
        except RadscribeInputError as exc:
            warn(f, str(exc))
            continue
        if len(pending) >= BATCH:
            yield from flush()
    yield from flush()


def cli_predict(args: Any) -> int:
    from radscribe.io.output import atomic_file
    from radscribe.models.registry import get_spec, load_model

    spec = get_spec(args.model)
    files = expand_paths(args.paths)
    out = Path(args.out)
    if out.is_dir():
        raise RadscribeInputError(f"--out {out} is a folder; give a .csv file path")
    loaded = load_model(spec.name)
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    t0 = time.perf_counter()
    skipped: list[Path] = []

    def warn(p, reason):
        skipped.append(p)
        print(f"warning: {p}: {reason}", file=sys.stderr)

    rows = []
    for path, pr in predict_files(loaded, files, warn=warn):
        k = int(np.argmax(pr))
        rows.append([str(path), spec.labels[k]] + [f"{float(v):.6f}" for v in pr])
    if not rows:
        raise RadscribeInputError(f"none of the {len(files)} input file(s) could be classified by {spec.name} "
                                  "(see the warnings above)")
    with atomic_file(out, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label"] + [f"p_{lbl}" for lbl in spec.labels])
        w.writerows(rows)
    print(f"{len(rows)} image(s) classified by {spec.name} -> {out}; {len(skipped)} file(s) skipped "
          f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return 0
