"""`radscribe predict`: CSV format, warnings for skipped files, exit codes (tiny random model, temp weights)."""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest
import yaml
from PIL import Image as PILImage

from radscribe.cli import main
from radscribe.models import predict as predict_mod
from radscribe.models import registry


def _write_weights(wdir, name="cxr-pneumonia", temperature=2.0, break_shape=False):
    """A randomly initialised model saved exactly as the training engineer exports one."""
    from safetensors.torch import save_file

    spec = registry.get_spec(name)
    module = registry.build_model(name, pretrained=False)
    state = {k: v.contiguous() for k, v in module.state_dict().items()}
    if break_shape:
        state["net._fc.weight"] = state["net._fc.weight"][:1].clone()
    wdir.mkdir(parents=True, exist_ok=True)
    save_file(state, str(wdir / "model.safetensors"))
    cfg = {"name": name, "labels": list(spec.labels), "seed": 0,
           "data": {"format": "folder", "dataset": "chest_xray_pneumonia", "train_dir": "train", "test_dir": "test",
                    "class_dirs": {"normal": "NORMAL", "pneumonia": "PNEUMONIA"}, "input_size": spec.input_size},
           "model": {"arch": spec.arch, "pretrained": False}, "train": {"epochs": 1}}
    (wdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    (wdir / "calibration.json").write_text(f'{{"temperature": {temperature}}}')


@pytest.fixture
def tiny_registry(tmp_path, monkeypatch):
    """cxr-pneumonia pointing at temp weights; the content check is replaced by a filename rule."""
    spec = registry.get_spec("cxr-pneumonia")
    wdir = tmp_path / "weights"
    _write_weights(wdir)
    monkeypatch.setitem(registry._SPECS, "cxr-pneumonia", dataclasses.replace(spec, weights_dir=wdir))
    monkeypatch.setattr(predict_mod, "check_domain",
                        lambda name, image, header: "content looks like brain mri (p=0.99)"
                        if "brain" in image.source else None)
    return wdir


def _png(path, rng, size=(96, 80)):
    PILImage.fromarray((rng.random(size) * 255).astype(np.uint8)).save(path)
    return path


def test_predict_folder_with_bad_files(tiny_registry, tmp_path, rng, capsys):
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    good = [_png(d / "a.png", rng), _png(d / "sub" / "b.png", rng, (300, 310))]
    _png(d / "brain.png", rng)
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (d / "notes.txt").write_text("not an image")
    (d / ".hidden.png").write_bytes(b"")
    out = tmp_path / "pred.csv"
    rc = main(["predict", "--model", "cxr-pneumonia", "--out", str(out), str(d), str(good[0])])
    err = capsys.readouterr().err
    assert rc == 0, err
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["path", "label", "p_normal", "p_pneumonia"]
    assert [r[0] for r in rows[1:]] == [str(good[0]), str(good[1]), str(good[0])]
    for r in rows[1:]:
        p = np.array([float(v) for v in r[2:]])
        assert abs(p.sum() - 1) < 1e-4 and r[1] == ["normal", "pneumonia"][int(p.argmax())]
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 3
    assert any("brain.png" in w and "out of domain" in w for w in warnings)
    assert any("broken.png" in w for w in warnings) and any("notes.txt" in w for w in warnings)
    assert "3 file(s) skipped" in err


def test_calibrated_probabilities_use_the_temperature(tiny_registry, tmp_path, rng):
    import torch

    loaded = registry.load_model("cxr-pneumonia")
    assert loaded.temperature == 2.0
    from radscribe.io.loader import load_study

    img = load_study(_png(tmp_path / "x.png", rng)).image
    x = loaded.preprocess(img)[None]
    expect = torch.softmax(loaded.logits(x) / 2.0, 1).numpy()
    (path, p), = list(predict_mod.predict_files(loaded, [tmp_path / "x.png"], domain_check=False, progress=False))
    assert np.allclose(p, expect[0], atol=1e-6)


def test_nothing_readable_is_exit_2(tiny_registry, tmp_path, capsys):
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    out = tmp_path / "p.csv"
    assert main(["predict", "--model", "cxr-pneumonia", "--out", str(out), str(tmp_path / "bad.jpg")]) == 2
    err = capsys.readouterr().err
    assert "warning:" in err and "error: none of the 1 input file(s)" in err and not out.exists()


def test_unknown_model_and_missing_path(tmp_path, capsys):
    assert main(["predict", "--model", "nope", "--out", str(tmp_path / "p.csv"), str(tmp_path)]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert main(["predict", "--model", "cxr-pneumonia", "--out", str(tmp_path / "p.csv"),
                 str(tmp_path / "missing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_weights_not_matching_config(tmp_path, monkeypatch, rng, capsys):
    wdir = tmp_path / "w"
    _write_weights(wdir, break_shape=True)
    monkeypatch.setitem(registry._SPECS, "cxr-pneumonia",
                        dataclasses.replace(registry.get_spec("cxr-pneumonia"), weights_dir=wdir))
    rc = main(["predict", "--model", "cxr-pneumonia", "--out", str(tmp_path / "p.csv"), str(_png(tmp_path / "a.png", rng))])
    assert rc == 2 and "do not match" in capsys.readouterr().err


def test_real_images_route_by_content(shared_dataset, tiny_registry, tmp_path, monkeypatch, capsys):
    """With the real domain classifier: chest X-rays are classified, a brain MRI in the same folder is skipped."""
    from radscribe.models import domain

    assert (domain.WEIGHTS_DIR / "model.safetensors").is_file(), "the domain classifier weights are committed"
    cxr, mri = shared_dataset("chest_xray_pneumonia"), shared_dataset("brain_tumor_mri")
    monkeypatch.undo()   # real check_domain, but keep the temp weights
    monkeypatch.setitem(registry._SPECS, "cxr-pneumonia",
                        dataclasses.replace(registry.get_spec("cxr-pneumonia"), weights_dir=tiny_registry))
    files = sorted((cxr / "test" / "NORMAL").glob("*.jpeg"))[:2] + sorted((mri / "Testing" / "glioma").glob("*.jpg"))[:1]
    out = tmp_path / "p.csv"
    assert main(["predict", "--model", "cxr-pneumonia", "--out", str(out), *map(str, files)]) == 0
    rows = list(csv.reader(out.open()))[1:]
    assert [r[0] for r in rows] == [str(f) for f in files[:2]]
    assert "brain mri" in capsys.readouterr().err


def test_adrenal3d_reads_nifti_crops_only(tmp_path, monkeypatch, rng, capsys):
    """ct-adrenal3d: a 28^3 NIfTI shape mask is classified; a 2D PNG and a CT-sized volume are skipped."""
    import nibabel as nib
    from safetensors.torch import save_file

    spec = registry.get_spec("ct-adrenal3d")
    wdir = tmp_path / "w3d"
    wdir.mkdir()
    net = registry.build_model("ct-adrenal3d", width=4, depth=2, stem_stride=2)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(wdir / "model.safetensors"))
    (wdir / "config.yaml").write_text(yaml.safe_dump({
        "name": spec.name, "labels": list(spec.labels), "data": {"format": "npz", "dataset": "adrenalmnist3d",
        "npz_file": "adrenalmnist3d_64.npz", "input_size": spec.input_size},
        "model": {"arch": "cnn3d", "width": 4, "depth": 2, "stem_stride": 2}, "train": {"epochs": 1}}))
    monkeypatch.setitem(registry._SPECS, spec.name, dataclasses.replace(spec, weights_dir=wdir))
    zz, yy, xx = np.mgrid[:28, :28, :28]
    mask = (((zz - 14) / 8) ** 2 + ((yy - 14) / 5) ** 2 + ((xx - 14) / 4) ** 2 < 1).astype(np.uint8) * 255
    nib.save(nib.Nifti1Image(mask, np.eye(4)), tmp_path / "gland.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((200, 100, 90), np.int16), np.eye(4)), tmp_path / "abdomen.nii.gz")
    _png(tmp_path / "slice.png", rng)
    out = tmp_path / "p.csv"
    files = [tmp_path / "gland.nii.gz", tmp_path / "abdomen.nii.gz", tmp_path / "slice.png"]
    assert main(["predict", "--model", "ct-adrenal3d", "--out", str(out), *map(str, files)]) == 0
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["path", "label", "p_normal", "p_adrenal_mass"] and [r[0] for r in rows[1:]] == [str(files[0])]
    err = capsys.readouterr().err
    assert "abdomen.nii.gz" in err and "slice.png" in err and "2 file(s) skipped" in err
