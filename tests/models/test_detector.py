"""The detector contract: a detector registered by the test itself runs on its domain, refuses another,
is built once per session, and the docs' example runs as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from radscribe.analyze import Analyzer
from radscribe.errors import RadscribeInputError
from radscribe.findings.model import Finding
from radscribe.models import detector as detector_mod
from radscribe.models.detector import (DETECTORS, Detection, Detector, get_detector, parse_models,
                                       register_detector, unregister_detector)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "detectors.md"
TOY = "toy-square-finder"


class SquareFinder:
    """Toy: finds the bright square of a synthetic 2D image; refuses volumes."""

    name = TOY
    kinds = ("mass",)
    built = 0

    def __init__(self):
        SquareFinder.built += 1

    def applies(self, image, recognition):
        return f"{self.name} reads 2D images; this is a {image.shape[0]}-slice volume" if image.is_volume else None

    def detect(self, image):
        ys, xs = np.nonzero(image.array[0] > 0.5 * image.array.max())
        box = (0, int(ys.min()), int(xs.min()), 1, int(ys.max()) + 1, int(xs.max()) + 1)
        heat = np.zeros(image.shape[1:], np.float32)
        heat[box[1]:box[4], box[2]:box[5]] = 1.0
        f = Finding(kind="mass", detector=self.name, confidence=0.9, size_unit="px", box_voxel=box,
                    center_voxel=(0.0, (box[1] + box[4] - 1) / 2, (box[2] + box[5] - 1) / 2),
                    attributes={"evidence": "toy threshold"})
        return Detection(findings=(f,), heatmaps={0: heat}, contours={"square": heat > 0},
                         side_files={"toy/square.json": {"box": list(box)}, "toy/raw.bin": b"\x00\x01"},
                         notes=("toy detector ran",), timings={"toy_stage": 0.001})


@pytest.fixture
def toy():
    SquareFinder.built = 0
    register_detector(TOY, SquareFinder)
    yield SquareFinder
    unregister_detector(TOY)


def _png(path: Path) -> Path:
    a = np.full((96, 128), 20, np.uint8)
    a[30:50, 70:94] = 230
    PILImage.fromarray(a).save(path)
    return path


def _volume(path: Path) -> Path:
    nib = pytest.importorskip("nibabel")
    vol = np.random.default_rng(0).normal(0, 1, (70, 70, 20))  # NIfTI is (x, y, z): 20 slices, not adrenal-crop-like.astype(np.float32)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), path)
    return path


def test_toy_detector_runs_on_its_domain_and_refuses_another(toy, tmp_path):
    session = Analyzer(models=TOY)
    a = session.analyze(_png(tmp_path / "square.png"), tmp_path / "o1")
    assert a.detectors_run == (TOY,)
    (f,) = a.findings
    assert f.kind == "mass" and f.detector == TOY and f.box_voxel == (0, 30, 70, 1, 50, 94)
    out = tmp_path / "o1"
    doc = json.loads((out / "findings.json").read_text())
    assert doc["findings"][0]["artifacts"]["overlay"] == "overlays/finding_01_mass.png"
    assert (out / "overlays" / "finding_01_mass.png").is_file()
    assert json.loads((out / "toy" / "square.json").read_text()) == {"box": [0, 30, 70, 1, 50, 94]}
    assert (out / "toy" / "raw.bin").read_bytes() == b"\x00\x01"
    assert "toy detector ran" in doc["study"]["notes"] and a.timings["toy_stage"] == pytest.approx(0.001)
    assert f"detect:{TOY}" in a.timings

    b = session.analyze(_volume(tmp_path / "vol.nii.gz"), tmp_path / "o2")
    assert b.detectors_run == () and b.findings == ()
    assert any(n.startswith(f"{TOY} was requested but does not apply") and "20-slice volume" in n
               for n in b.study.notes)
    assert toy.built == 1            # one instance for the whole session


def test_auto_mode_runs_the_toy_beside_the_built_ins_on_a_volume_it_refuses(toy, tmp_path):
    a = Analyzer().analyze(_volume(tmp_path / "vol.nii.gz"), tmp_path / "o")
    assert TOY not in a.detectors_run
    assert any(n.startswith(f"{TOY} reads 2D images") for n in a.study.notes)
    # the built-in detectors said why they did not run, each in its own words
    for name in DETECTORS:
        if name != TOY and getattr(get_detector(name), "auto", True):  # opt-in ones are not asked in auto
            assert any(n.startswith(name + " ") for n in a.study.notes), name


def test_registry_api(toy):
    assert TOY in DETECTORS and isinstance(get_detector(TOY), Detector)
    with pytest.raises(RadscribeInputError, match=r"unknown detector 'nope'; known detectors: .*lung-nodule-classic"):
        get_detector("nope")
    assert parse_models("auto") is None and parse_models("none") == ()
    assert parse_models(f" {TOY} ,{TOY}") == (TOY,)
    with pytest.raises(RadscribeInputError, match=r"'nope', 'zip'.*known detectors: .*" + TOY):
        parse_models(f"{TOY},nope,zip")
    with pytest.raises(ValueError):
        register_detector("auto", SquareFinder)
    register_detector("misnamed", SquareFinder)
    try:
        with pytest.raises(TypeError, match="misnamed"):
            get_detector("misnamed")
    finally:
        unregister_detector("misnamed")


def test_built_in_detectors_declare_knowledge_kinds():
    from radscribe.knowledge.ontology import FINDING_KINDS
    from radscribe.models.registry import list_specs

    assert list(DETECTORS)[: 1 + len(list_specs())] == ["lung-nodule-classic"] + [s.name for s in list_specs()]
    for name in list(DETECTORS):
        det = get_detector(name)
        assert det.kinds and set(det.kinds) <= set(FINDING_KINDS), name


def test_a_finding_outside_the_declared_kinds_is_refused(toy, tmp_path, monkeypatch):
    monkeypatch.setattr(SquareFinder, "kinds", ("nodule",))
    with pytest.raises(TypeError, match="outside its declared kinds"):
        Analyzer(models=TOY).analyze(_png(tmp_path / "s.png"), tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_a_detector_that_cannot_run_is_noted_and_the_study_goes_on(toy, tmp_path, monkeypatch):
    def broken(self, image):
        raise RadscribeInputError("weights for the toy are not installed")
    monkeypatch.setattr(SquareFinder, "detect", broken)
    a = Analyzer(models=TOY).analyze(_png(tmp_path / "s.png"), tmp_path / "o")
    assert a.detectors_run == () and any("not installed" in n for n in a.study.notes)
    assert (tmp_path / "o" / "overlays" / "overview.png").is_file()


def test_docs_example_runs_as_written(tmp_path):
    code = re.search(r"```python\n(.*?)```", DOCS.read_text(), re.S).group(1)
    assert 15 <= len(code.strip().splitlines()) <= 30
    ns = {"IMAGE": _png(tmp_path / "doc.png"), "OUT": tmp_path / "doc-out"}
    try:
        exec(compile(code, str(DOCS), "exec"), ns)  # noqa: S102 - the documented example, run as written
    finally:
        unregister_detector("toy-bright-spot")
    a = ns["analysis"]
    assert a.detectors_run == ("toy-bright-spot",)
    assert a.findings[0].center_voxel == (0.0, 30.0, 70.0)   # the first brightest pixel of the square
    assert json.loads((tmp_path / "doc-out" / "bright_spot.json").read_text()) == {"y": 30, "x": 70}
    assert (tmp_path / "doc-out" / "overlays" / "finding_01_nodule.png").is_file()


def test_detector_module_is_the_one_registry():
    assert detector_mod.DETECTORS is DETECTORS


def test_an_opt_in_detector_runs_only_when_named(tmp_path):
    """``auto = False``: skipped silently in auto mode, run when --models names it."""
    calls = []

    class OptIn:
        name, kinds, auto = "toy-opt-in", ("nodule",), False

        def applies(self, image, recognition):
            return None

        def detect(self, image):
            calls.append(1)
            return Detection(findings=())

    register_detector(OptIn.name, OptIn)
    try:
        img = tmp_path / "x.png"
        import numpy as np
        from PIL import Image as PILImage

        PILImage.fromarray((np.arange(64 * 64) % 251).astype(np.uint8).reshape(64, 64)).save(img)
        a = Analyzer().analyze(img, tmp_path / "auto")
        assert OptIn.name not in a.detectors_run and not calls
        assert not any(n.startswith(OptIn.name) for n in a.study.notes)
        b = Analyzer(models=OptIn.name).analyze(img, tmp_path / "named")
        assert b.detectors_run == (OptIn.name,) and calls == [1]
    finally:
        unregister_detector(OptIn.name)
