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
