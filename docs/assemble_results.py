"""Build docs/results.md from the per-area result pages in docs/parts/ (run after any part changes).

    python docs/assemble_results.py
"""

from pathlib import Path

HERE = Path(__file__).parent
ORDER = [
    ("io.md", "Reading studies: formats, geometry, recognition"),
    ("knowledge.md", "Knowledge module: one vocabulary, codes, generated schema"),
    ("nodules.md", "Chest CT: phantom, lung segmentation, masses, nodule candidates"),
    ("nodule_fpr.md", "Chest CT: learned false-positive reduction of nodule candidates (FROC, CPM)"),
    ("lidc.md", "Chest CT: LIDC nodule segmentation and characterisation"),
    ("analyze.md", "`radscribe analyze`: speed and memory"),
    ("training.md", "Image classifiers: training"),
    ("vision_eval.md", "Image classifiers: test figures, calibration, heatmaps, duplicates, routing, speed"),
    ("brain_seg.md", "Brain MRI: tumour segmentation and measurement"),
    ("ct_slice.md", "Chest CT slices (COV-CTR): the ct-chest-slice detector"),
    ("labeler.md", "Report labeler and the evaluation protocol"),
    ("generators.md", "Report generators (structured, baselines, from-scratch decoder)"),
    ("llm.md", "Language model: SmolLM2-135M + LoRA, and the OpenAI-compatible server backend"),
    ("audit.md", "Second-reader audit of generated reports"),
    ("serve.md", "HTTP API and web page"),
    ("checks.md", "Test suite, CI and demo timings"),
]

HEADER = """# radscribe results

Every figure radscribe reports, with the exact command that reproduces it, the data split, the machine
and the wall time. Each section below is maintained in `docs/parts/<area>.md`; this page is assembled
from them by `python docs/assemble_results.py`.

Machine for every figure unless a section says otherwise: 2-core x86-64 CPU, 24 GiB RAM, no GPU.
Most figures were measured while several other jobs shared the two cores (load average 5-20), so wall
times are pessimistic; sections give CPU time where it matters. Test-split figures were computed once,
after model selection on validation data.

"""


def main() -> None:
    parts = [HEADER, "## Contents\n"]
    present = [(f, t) for f, t in ORDER if (HERE / "parts" / f).exists()]
    parts += [f"{i + 1}. {t}" for i, (f, t) in enumerate(present)]
    parts.append("")
    for i, (f, title) in enumerate(present, 1):
        body = (HERE / "parts" / f).read_text().strip().splitlines()
        if body and body[0].startswith("# "):
            body = body[1:]
        # demote headings one level so each part nests under its section
        body = [("#" + ln) if ln.startswith("#") else ln for ln in body]
        parts += [f"## {i}. {title}", f"_Source: docs/parts/{f}_", *body, ""]
    (HERE / "results.md").write_text("\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
