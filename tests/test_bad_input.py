"""Bad input through the CLI, as a hostile user would try it: ``radscribe analyze BAD --out DIR``
prints exactly one line on stderr, starting with ``error:``, exits 2, and creates no output folder
(no library warning before the line, no message over two lines). The header-declares-gigabytes
case runs in a subprocess under an address-space limit and must stay small and fast."""

from __future__ import annotations

import gzip
import os
import resource
import shutil
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from pydicom.data import get_testdata_file

from radscribe import cli
from radscribe.errors import RadscribeInputError

REPO = Path(__file__).resolve().parents[1]


def _nifti_bytes(shape, dtype=np.float64, pixdim=1.0, n_data=4096) -> bytes:
    h = nib.Nifti1Header()
    h.set_data_shape(shape)
    h.set_data_dtype(dtype)
    h["pixdim"][1:4] = pixdim
    return h.binaryblock + b"\0" * 4 + b"\0" * n_data


def _zero_pixdim_nifti(p: Path) -> None:
    """A NIfTI with pixdim 0 and no qform/sform (nibabel warns when it builds the affine) whose
    voxels hold a NaN (radscribe refuses it): the warning used to print before the error line."""
    h = nib.Nifti1Header()
    h.set_data_shape((4, 4, 4))
    h.set_data_dtype(np.float32)
    h["pixdim"][1:4] = 0
    h.set_data_offset(352)
    a = np.zeros(64, np.float32)
    a[5] = np.nan
    p.write_bytes(h.binaryblock + b"\0" * 4 + a.tobytes())


def _png(w, h, payload: bytes) -> bytes:
    import struct

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(payload)) + chunk(b"IEND", b""))


def _make(kind: str, d: Path) -> Path:
    """One bad input of the given kind inside ``d``."""
    if kind == "missing":
        return d / "nothing-here.dcm"
    if kind == "empty":
        (d / "empty.dcm").write_bytes(b"")
        return d / "empty.dcm"
    if kind == "garbage-dicom":
        (d / "noise.dcm").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
        return d / "noise.dcm"
    if kind == "truncated-dicom":
        data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
        (d / "cut.dcm").write_bytes(data[: len(data) // 2])
        return d / "cut.dcm"
    if kind == "sr-without-pixels":
        shutil.copy(get_testdata_file("test-SR.dcm"), d / "report.dcm")
        return d / "report.dcm"
    if kind == "empty-folder":
        (d / "nothing").mkdir()
        return d / "nothing"
    if kind == "zero-pixdim-nifti":
        _zero_pixdim_nifti(d / "flat.nii")
        return d / "flat.nii"
    if kind == "nifti-header-bomb":
        (d / "bomb.nii").write_bytes(_nifti_bytes((1024, 1024, 300)))
        return d / "bomb.nii"
    if kind == "nifti-gz-header-bomb":
        (d / "bomb.nii.gz").write_bytes(gzip.compress(_nifti_bytes((1024, 1024, 300))))
        return d / "bomb.nii.gz"
    if kind == "nifti-over-cap":
        (d / "huge.nii").write_bytes(_nifti_bytes((2048, 2048, 200)))
        return d / "huge.nii"
    if kind == "nifti-nan":
        a = np.zeros((8, 8, 8), np.float32)
        a[1, 2, 3] = np.nan
        nib.save(nib.Nifti1Image(a, np.eye(4)), d / "nan.nii")
        return d / "nan.nii"
    if kind == "mhd-without-raw":
        (d / "vol.mhd").write_text("ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_SHORT\n"
                                   "ElementDataFile = vol.raw\n")
        return d / "vol.mhd"
    if kind == "zraw-short":
        (d / "vol.zraw").write_bytes(zlib.compress(b"\0" * 1000))
        (d / "vol.mhd").write_text("ObjectType = Image\nNDims = 3\nDimSize = 512 512 400\nElementType = MET_DOUBLE\n"
                                   "CompressedData = True\nElementDataFile = vol.zraw\n")
        return d / "vol.mhd"
    if kind == "nrrd-short":
        (d / "v.nrrd").write_bytes(b"NRRD0004\ntype: short\ndimension: 3\nsizes: 512 512 300\nencoding: raw\n"
                                   b"endian: little\n\n" + b"\0" * 100)
        return d / "v.nrrd"
    if kind == "png-thin":
        (d / "thin.png").write_bytes(_png(9000, 9000, b"\0" * 1000))
        return d / "thin.png"
    if kind == "jpeg-truncated":
        from PIL import Image as PILImage

        PILImage.fromarray(np.random.default_rng(1).integers(0, 256, (300, 300), dtype=np.uint8)).save(d / "x.jpg")
        data = (d / "x.jpg").read_bytes()
        (d / "x.jpg").write_bytes(data[: len(data) // 3])
        return d / "x.jpg"
    if kind == "unknown-format":
        (d / "notes.txt").write_text("not an image\n")
        return d / "notes.txt"
    raise ValueError(kind)


KINDS = ["missing", "empty", "garbage-dicom", "truncated-dicom", "sr-without-pixels", "empty-folder",
         "zero-pixdim-nifti", "nifti-header-bomb", "nifti-gz-header-bomb", "nifti-over-cap", "nifti-nan",
         "mhd-without-raw", "zraw-short", "nrrd-short", "png-thin", "jpeg-truncated", "unknown-format"]


def _assert_one_error_line(err: str, out_dir: Path) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and len(lines[0]) > len("error: ") + 10, err
    assert not out_dir.exists(), f"{out_dir} was created"
    if out_dir.parent.exists():
        assert not [p for p in out_dir.parent.iterdir() if p.name.startswith(f".{out_dir.name}")], "temp left"
    return lines[0]


@pytest.mark.parametrize("kind", KINDS)
def test_bad_input_in_process(tmp_path, capfd, kind):
    """Through cli.main (fd-level capture, so C libraries printing to stderr are caught too)."""
    bad = _make(kind, tmp_path)
    out = tmp_path / "out" / "study"
    with warnings.catch_warnings():
        warnings.resetwarnings()  # as in a fresh process: every library warning would show
        rc = cli.main(["analyze", str(bad), "--out", str(out)])
    captured = capfd.readouterr()
    assert rc == 2
    line = _assert_one_error_line(captured.err, out)
    assert bad.name in line or "nothing" in line
    assert captured.out == ""


def _child(args: list[str], limit_bytes: int | None = None, timeout: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``radscribe <args>`` in a fresh interpreter; return the result and its wall time.
    The child prints its own peak resident memory (KiB, VmHWM) on stdout after main() returns."""
    # VmHWM (peak resident KiB of this program), not ru_maxrss: Linux carries ru_maxrss over exec from
    # the forking parent, here a pytest process that may already hold gigabytes.
    code = ("import re, sys\nfrom radscribe.cli import main\nrc = main(sys.argv[1:])\n"
            "print(re.search(r'VmHWM:\\s+(\\d+)', __import__('pathlib').Path('/proc/self/status').read_text()).group(1))\nsys.exit(rc)\n")
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", PYTHONWARNINGS="default")

    def limit():
        if limit_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                       preexec_fn=limit, timeout=timeout)
    return r, time.perf_counter() - t


@pytest.mark.parametrize("kind", ["zero-pixdim-nifti", "truncated-dicom", "zraw-short"])
def test_bad_input_in_a_fresh_process(tmp_path, kind):
    """In a fresh interpreter the libraries are imported during the command (nibabel adds its own
    stderr log handler on import): still one line."""
    bad = _make(kind, tmp_path)
    out = tmp_path / "out"
    r, _ = _child(["analyze", str(bad), "--out", str(out)])
    assert r.returncode == 2, r.stderr
    assert bad.name in _assert_one_error_line(r.stderr, out)


@pytest.mark.parametrize("kind", ["nifti-header-bomb", "nifti-gz-header-bomb"])
def test_header_bomb_under_address_space_limit(tmp_path, kind):
    """A few-KB NIfTI declaring 1024x1024x300 float64 (2.3 GiB as stored): before the byte checks
    this drove the process to 2.5 GB resident in ~21 s; under a 2.5 GiB address-space limit it must
    answer with one error line, from the header and the file size alone."""
    bad = _make(kind, tmp_path)
    assert bad.stat().st_size < 10_000
    out = tmp_path / "out"
    r, wall = _child(["analyze", str(bad), "--out", str(out)], limit_bytes=int(2.5 * 1024**3))
    assert r.returncode == 2, r.stderr
    line = _assert_one_error_line(r.stderr, out)
    assert "2,516,582,400 bytes" in line and "truncated or its header is wrong" in line
    peak_mib = int(r.stdout.strip().splitlines()[-1]) / 1024
    assert peak_mib < 600, f"peak resident memory {peak_mib:.0f} MiB"
    assert wall < 30  # a fresh interpreter with its imports; the check itself takes milliseconds


def test_warning_then_error_prints_only_the_error(tmp_path, capfd, monkeypatch):
    """A library warning raised before the error is held back; a message with newlines is one line."""
    monkeypatch.setitem(cli.COMMANDS, "analyze", f"{__name__}:_warn_then_fail")
    rc = cli.main(["analyze", str(tmp_path / "x"), "--out", str(tmp_path / "o")])
    err = capfd.readouterr().err
    assert rc == 2 and err == "error: first line second line  indented third\n".replace("  ", " ")


def test_warnings_of_a_successful_command_are_shown_after(tmp_path, capfd, monkeypatch):
    monkeypatch.setitem(cli.COMMANDS, "analyze", f"{__name__}:_warn_then_succeed")
    rc = cli.main(["analyze", str(tmp_path / "x"), "--out", str(tmp_path / "o")])
    err = capfd.readouterr().err
    assert rc == 0 and err == "warning: UserWarning: pixdim[1,2,3] should be positive; setting to abs\n"


def _warn_then_fail(args) -> int:
    warnings.warn("pixdim[1,2,3] should be positive;\nsetting to abs", UserWarning)
    raise RadscribeInputError("first line\nsecond line\n   indented third")


def _warn_then_succeed(args) -> int:
    warnings.warn("pixdim[1,2,3] should be positive;\nsetting to abs", UserWarning)
    return 0
