"""Layers point one way: a module of ``radscribe/`` imports only its own layer or lower ones.

The imports are read with ``ast`` (every ``import`` / ``from ... import``, at module top, inside
functions and under ``TYPE_CHECKING`` alike, relative ones resolved), plus the ``"radscribe.x.y:name"``
strings that plain-dict registries import later (``GENERATORS``, ``COMMANDS``). A module's layer is its
first folder under ``radscribe/`` (``radscribe/report/scratch.py`` -> ``report``) or, for a top-level
module, its name (``radscribe/errors.py`` -> ``errors``).

Order, lowest first (from docs/style.md's read -> prepare -> detect -> describe -> evaluate -> serve,
and from what the code imports):

    errors < io < knowledge < findings < preprocess < data < models < report < train < evaluate
           < analyze < serve

- ``errors`` is the one exception family every layer raises.
- ``io`` reads files into ``Image``; it knows nothing of findings or models.
- ``knowledge`` (ontology, Fleischner rules, the report labeler) is pure vocabulary and rules: it sits
  below everything that names a finding kind. Scoring the labeler against a dataset's MeSH coding reads
  ``data``, so it lives in ``evaluate/labeler.py``.
- ``findings`` holds the result dataclasses (``Finding``, ``Analysis``) built from knowledge's kinds.
- ``preprocess`` (windowing, lung masks, recognition) uses ``io`` images and knowledge's anatomy.
- ``data`` (dataset adapters, phantom, splits, duplicate checks) may use preprocess, findings, io.
- ``models`` (detectors, classifiers, registry) read their datasets through ``data``.
- ``report`` (writers) runs trained weights but never imports ``train`` or ``evaluate``.
- ``train`` builds models and report writers; ``evaluate`` scores them and may reuse ``train``'s
  data pipeline, configs and calibration.
- ``analyze`` is the pipeline's top (study in, findings and report out); ``serve`` wraps it over HTTP.

Above every layer: ``cli`` (the one entry point, which maps commands to modules by name), ``demo``
and ``__main__`` may import anything; ``__init__`` only holds the version.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "radscribe"

LAYERS = ("errors", "io", "knowledge", "findings", "preprocess", "data", "models", "report", "train", "evaluate",
          "pipeline", "analyze", "serve")
TOP = {"cli", "demo", "__main__", "__init__"}
RANK = {name: i for i, name in enumerate(LAYERS)}
REGISTRY_STRING = re.compile(r"^radscribe(\.\w+)+:\w+$")

#: Modules over the size limit that belong to work not done here; each entry names why. The test fails
#: when an entry is no longer needed, so the list only shrinks.
MAX_LINES = 460
OVERSIZE: dict[str, str] = {}


def _layer(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import of ``path`` inside the radscribe package."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = _module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((node.lineno, mod))
            # "from radscribe import analyze" names a module, not an attribute
            out += [(node.lineno, f"{mod}.{a.name}") for a in node.names if mod == "radscribe"]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and REGISTRY_STRING.match(node.value):
            out.append((node.lineno, node.value.split(":")[0]))
    return [(ln, m) for ln, m in out if m.split(".")[0] == "radscribe" and len(m.split(".")) > 1]


def _modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "weights" not in p.relative_to(PKG).parts)


def test_every_module_has_a_known_layer():
    unknown = sorted({_layer(p) for p in _modules()} - set(LAYERS) - TOP)
    assert not unknown, f"add these to LAYERS (in order) or TOP, and say why in the docstring: {unknown}"


def test_no_lower_layer_imports_a_higher_one():
    bad = []
    for path in _modules():
        src = _layer(path)
        if src in TOP:
            continue
        for line, mod in _imports(path):
            dst = mod.split(".")[1]
            if dst in TOP:
                bad.append(f"{path.relative_to(PKG.parent)}:{line} imports {mod} (only entry points may)")
            elif dst in RANK and RANK[dst] > RANK[src]:
                bad.append(f"{path.relative_to(PKG.parent)}:{line} ({src}) imports {mod} ({dst}, a higher layer)")
    assert not bad, "layers must point one way (see this test's docstring):\n" + "\n".join(bad)


def test_the_reader_sees_lazy_and_registry_imports(tmp_path, monkeypatch):
    """The checker itself: function-level, relative and "module:name" imports all count."""
    fake = tmp_path / "radscribe"
    (fake / "io").mkdir(parents=True)
    (fake / "io" / "bad.py").write_text(
        "def f():\n    from radscribe.report import structured\n"
        "from ..models import registry\n"
        "X = {'a': 'radscribe.serve.app:cli_serve'}\n")
    monkeypatch.setattr(sys.modules[__name__], "PKG", fake)
    found = sorted(m for _, m in _imports(fake / "io" / "bad.py"))
    assert found == ["radscribe.models", "radscribe.report", "radscribe.serve.app"]


def test_modules_stay_small():
    sizes = {str(p.relative_to(PKG)): len(p.read_text(encoding="utf-8").splitlines()) for p in _modules()}
    over = {k: n for k, n in sizes.items() if n > MAX_LINES and k not in OVERSIZE}
    assert not over, f"modules over {MAX_LINES} lines (split along a seam, see docs/style.md): {over}"
    stale = [k for k in OVERSIZE if sizes.get(k, 0) <= MAX_LINES]
    assert not stale, f"no longer over {MAX_LINES} lines: remove from OVERSIZE: {stale}"


HEAVY = ("torch", "transformers", "peft", "fastapi", "uvicorn", "matplotlib", "monai", "sklearn")


@pytest.mark.parametrize("argv", [["models"], ["--help"]])
def test_fast_commands_do_not_import_torch(argv):
    code = ("import contextlib, io, sys\n"
            "from radscribe.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n"
            f"        main({argv!r})\n"
            "    except SystemExit:\n"
            "        pass\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"radscribe {' '.join(argv)} imported {out.strip()}"
