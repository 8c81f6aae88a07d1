"""`radscribe analyze` user contract: bad input -> one `error:` line, exit 2, nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image as PILImage

from radscribe.cli import main


def _run(capsys, *argv):
    rc = main(list(argv))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _assert_clean_error(rc, err, needle):
    assert rc == 2
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in lines[0]
    assert "Traceback" not in err


def test_missing_path(tmp_path, capsys):
    rc, _, err = _run(capsys, "analyze", str(tmp_path / "nope.dcm"), "--out", str(tmp_path / "o"))
    _assert_clean_error(rc, err, "nope.dcm")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name,content", [
    ("empty.dcm", b""),
    ("text.png", b"this is not an image at all"),
    ("truncated.png", None),
    ("notes.txt", b"hello"),
])
def test_unreadable_files_leave_nothing_behind(tmp_path, capsys, name, content):
    p = tmp_path / name
    if content is None:  # a real PNG cut in half
        PILImage.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)).save(p)
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    else:
        p.write_bytes(content)
    rc, _, err = _run(capsys, "analyze", str(p), "--out", str(tmp_path / "o"))
    _assert_clean_error(rc, err, name)
    assert not (tmp_path / "o").exists()
    assert not [q for q in tmp_path.iterdir() if q.name.startswith(".o.tmp")]


def test_existing_output_is_never_touched_without_overwrite(tmp_path, capsys):
    img = tmp_path / "x.png"
    PILImage.fromarray(np.zeros((32, 32), np.uint8)).save(img)
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    rc, _, err = _run(capsys, "analyze", str(img), "--out", str(out))
    _assert_clean_error(rc, err, "exists")
    assert (out / "keep.txt").read_text() == "precious"


def test_nan_volume_is_rejected(tmp_path, capsys):
    nib = pytest.importorskip("nibabel")
    vol = np.zeros((16, 16, 16), np.float32)
    vol[3, 4, 5] = np.nan
    p = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.eye(4)), p)
    rc, _, err = _run(capsys, "analyze", str(p), "--out", str(tmp_path / "o"))
    _assert_clean_error(rc, err, "NaN")
    assert not (tmp_path / "o").exists()


def test_unsupported_study_gets_an_honest_report(tmp_path, capsys):
    """A head CT (NIfTI, no header): never lung findings; the report says no detector applies."""
    nib = pytest.importorskip("nibabel")
    z, y, x = np.mgrid[:40, :96, :96]
    r = np.sqrt(((y - 48) / 40.0) ** 2 + ((x - 48) / 34.0) ** 2)
    vol = np.full((40, 96, 96), -1000, np.float32)
    vol[r < 1.0] = 1200.0          # skull
    vol[r < 0.9] = 35.0            # brain
    # NIfTI is RAS and (x, y, z) ordered: 2 mm isotropic
    p = tmp_path / "head.nii.gz"
    nib.save(nib.Nifti1Image(np.ascontiguousarray(vol.transpose(2, 1, 0)), np.diag([2.0, 2.0, 2.0, 1.0])), p)
    out = tmp_path / "o"
    rc, stdout, err = _run(capsys, "analyze", str(p), "--out", str(out))
    assert rc == 0, err
    doc = json.loads((out / "findings.json").read_text())
    assert doc["study"]["body_region"] != "chest"
    assert "lung-nodule-classic" not in doc["detectors_run"]
    assert not [f for f in doc["findings"] if f["kind"] in ("nodule", "pneumonia")]
    report = (out / "report.md").read_text()
    assert "nodule" not in report.lower().split("## technical notes")[0]
    if not doc["detectors_run"]:
        assert "No automated detector" in report


EXAMPLES = __import__("pathlib").Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("name,modality,region,model", [
    ("cxr_pneumonia_person100_bacteria_475.jpeg", "CR", "chest", "cxr-pneumonia"),
    ("mri_glioma_Te-glTr_0000.jpg", "MR", "brain", "mri-brain-tumor"),
    ("ct_kidney_stone_Stone-401.jpg", "CT", "abdomen", "ct-kidney"),
])
def test_bundled_examples_are_routed_to_their_own_model_only(tmp_path, capsys, name, modality, region, model):
    from radscribe.models.registry import get_spec

    if not (get_spec(model).weights_dir / "model.safetensors").exists():
        pytest.skip(f"{model} weights are not installed")
    out = tmp_path / "o"
    rc, _, err = _run(capsys, "analyze", str(EXAMPLES / name), "--out", str(out))
    assert rc == 0, err
    doc = json.loads((out / "findings.json").read_text())
    assert (doc["study"]["modality"], doc["study"]["body_region"]) == (modality, region)
    assert doc["study"]["recognized_from"] == "content"
    assert doc["detectors_run"] == [model]          # never another domain's model
    assert all(f["detector"] == model for f in doc["findings"])
    for f in doc["findings"]:
        if f["present"]:
            assert (out / f["artifacts"]["overlay"]).exists() and f["box_voxel"] is not None


def test_unknown_writer_fails_before_any_work(tmp_path, capsys):
    img = tmp_path / "x.png"
    PILImage.fromarray(np.zeros((32, 32), np.uint8)).save(img)
    rc, _, err = _run(capsys, "analyze", str(img), "--out", str(tmp_path / "o"), "--writer", "poetry")
    _assert_clean_error(rc, err, "unknown report writer 'poetry'")
    assert "llm-lora" in err and not (tmp_path / "o").exists()


# --- several studies in one session -------------------------------------------------------------

def _png(path, value=0):
    PILImage.fromarray(np.full((32, 32), value, np.uint8)).save(path)
    return path


def test_several_paths_one_folder_each_and_a_failure_does_not_stop_the_others(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    p1, p2 = _png(tmp_path / "a" / "x.png"), _png(tmp_path / "b" / "x.png", 50)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    out = tmp_path / "batch"
    rc, stdout, err = _run(capsys, "analyze", str(p1), str(bad), str(p2), "--out", str(out), "--models", "none")
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["x", "x-2"]
    for name in ("x", "x-2"):
        assert json.loads((out / name / "findings.json").read_text())["detectors_run"] == []
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "broken.png" in errors[0] and "Traceback" not in err
    assert "2 of 3 studies" in stdout and "failed" in stdout
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_several_paths_exit_2_only_when_none_succeeded(tmp_path, capsys):
    bad1, bad2 = tmp_path / "b1.png", tmp_path / "b2.dcm"
    bad1.write_bytes(b"x")
    bad2.write_bytes(b"")
    rc, _, err = _run(capsys, "analyze", str(bad1), str(bad2), "--out", str(tmp_path / "o"))
    assert rc == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert all(ln.startswith("error:") for ln in lines) and len(lines) == 3 and "none of the 2" in lines[-1]
    assert not any(p.name != "o" and p.name.startswith(".") for p in tmp_path.iterdir())


def test_a_second_study_in_a_session_loads_no_model_again(tmp_path, monkeypatch):
    from radscribe.analyze import Analyzer
    from radscribe.models import registry
    from radscribe.models.registry import get_spec

    if not (get_spec("mri-brain-tumor").weights_dir / "model.safetensors").exists():
        pytest.skip("mri-brain-tumor weights are not installed")
    calls = []
    real = registry.load_model
    monkeypatch.setattr(registry, "load_model", lambda *a, **k: calls.append(a) or real(*a, **k))
    session = Analyzer()
    img = EXAMPLES / "mri_glioma_Te-glTr_0000.jpg"
    first = session.analyze(img, tmp_path / "one")
    second = session.analyze(img, tmp_path / "two")
    assert first.detectors_run == second.detectors_run == ("mri-brain-tumor",)
    assert len(calls) == 1
    assert first.timings["load_model"] > 10 * second.timings.get("load_model", 0.0)
    assert [f.kind for f in first.findings] == [f.kind for f in second.findings]


# --- the output boundary ------------------------------------------------------------------------

def test_output_parent_is_a_file(tmp_path, capsys):
    img = _png(tmp_path / "x.png")
    (tmp_path / "file.txt").write_text("x")
    rc, _, err = _run(capsys, "analyze", str(img), "--out", str(tmp_path / "file.txt" / "sub" / "o"))
    _assert_clean_error(rc, err, "is a file")


@pytest.mark.parametrize("n", [300, 250])   # 250 fits the file system, not its temporary sibling
def test_output_name_too_long(tmp_path, capsys, n):
    img = _png(tmp_path / "x.png")
    rc, _, err = _run(capsys, "analyze", str(img), "--out", str(tmp_path / ("o" * n)))
    _assert_clean_error(rc, err, "too long")
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


def test_output_folder_not_writable(tmp_path, capsys):
    import os

    if os.geteuid() == 0:
        pytest.skip("root may write anywhere; the OS-error path is tested by injection below")
    img = _png(tmp_path / "x.png")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        rc, _, err = _run(capsys, "analyze", str(img), "--out", str(ro / "o"))
    finally:
        ro.chmod(0o700)
    _assert_clean_error(rc, err, "permission")


@pytest.mark.parametrize("where", ["mkdtemp", "write"])
def test_os_errors_at_the_output_boundary_become_one_error_line(tmp_path, capsys, monkeypatch, where):
    import errno
    import tempfile
    from pathlib import Path

    img = _png(tmp_path / "x.png")
    if where == "mkdtemp":
        def fail(*a, **k):
            raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path))
        monkeypatch.setattr(tempfile, "mkdtemp", fail)
    else:
        real = Path.write_text

        def fail(self, *a, **k):
            if self.name == "findings.json":
                raise OSError(errno.ENOSPC, "No space left on device", str(self))
            return real(self, *a, **k)
        monkeypatch.setattr(Path, "write_text", fail)
    rc, _, err = _run(capsys, "analyze", str(img), "--out", str(tmp_path / "o"), "--models", "none")
    _assert_clean_error(rc, err, "Permission denied" if where == "mkdtemp" else "No space left")
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


# --- names from the registries ------------------------------------------------------------------

def test_unknown_models_are_refused_with_the_known_names(tmp_path, capsys):
    from radscribe.models.detector import DETECTORS

    img = _png(tmp_path / "x.png")
    rc, _, err = _run(capsys, "analyze", str(img), "--out", str(tmp_path / "o"), "--models", "cxr-pneumonia,lung-ai")
    _assert_clean_error(rc, err, "'lung-ai'")
    assert all(name in err for name in DETECTORS) and not (tmp_path / "o").exists()


def test_help_lists_the_registered_detectors_and_writers(capsys):
    from radscribe.models.detector import DETECTORS
    from radscribe.report.generate import GENERATORS

    with pytest.raises(SystemExit):
        main(["analyze", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(n in text for n in DETECTORS) and all(n in text for n in GENERATORS)


# --- optional outputs never sink a study ----------------------------------------------------------

def test_a_failing_sr_export_leaves_the_study_written_with_a_note(tmp_path, capsys, monkeypatch):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    src = get_testdata_file("CT_small.dcm")
    rc, _, err = _run(capsys, "analyze", src, "--out", str(tmp_path / "ok"), "--models", "none")
    assert rc == 0, err
    assert pydicom.dcmread(tmp_path / "ok" / "report.sr.dcm").Modality == "SR"

    import radscribe.report.sr as sr

    def broken(*a, **k):
        raise AttributeError("'Dataset' object has no attribute 'PatientBirthDate'")
    monkeypatch.setattr(sr, "build_sr", broken)
    out = tmp_path / "o"
    rc, _, err = _run(capsys, "analyze", src, "--out", str(out), "--models", "none")
    assert rc == 0, err
    assert not (out / "report.sr.dcm").exists()
    doc = json.loads((out / "findings.json").read_text())
    note = [n for n in doc["study"]["notes"] if n.startswith("DICOM SR (report.sr.dcm) not written")]
    assert note and "PatientBirthDate" in note[0]
    assert "not written" in (out / "report.md").read_text() and (out / "report.fhir.json").is_file()
