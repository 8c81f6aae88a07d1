"""Modality and body region: the real chest CT (header and content alone), a real head CT (Debian's
invesalius-examples), synthetic head and abdomen CT phantoms, MR and 2D headers."""

from __future__ import annotations

import plistlib
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from radscribe.io.image import Image
from radscribe.io.loader import load_study
from radscribe.knowledge.ontology import BODY_REGIONS
from radscribe.preprocess.recognize import content_region, looks_like_hu, recognize


@pytest.fixture(scope="module")
def chest(request):
    from radscribe.data.paths import shared_data_dir

    d = shared_data_dir() / "chest_ct_series" / "dicom"
    if not d.is_dir():
        pytest.skip(f"needs the shared dataset 'chest_ct_series' at {d}; absent here")
    return load_study(d)


def _strip(im: Image) -> Image:
    """The same voxels with no header knowledge (as if read from a NIfTI file)."""
    return im.with_array(im.array, modality="OT", units="arbitrary", body_part=None, meta={})


def _ellipse(shape, cy, cx, ry, rx):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def head_ct(n=40, side=160, seed=0) -> Image:
    """Air around a head: skin, a 6-pixel skull ring (1200 HU) enclosing brain (20..45 HU)."""
    rng = np.random.default_rng(seed)
    vol = np.full((n, side, side), -1000.0, np.float32)
    c = side / 2
    for z in range(n):
        r = 62 * np.sqrt(max(0.2, 1 - ((z - n * 0.45) / (n * 0.65)) ** 2))
        head = _ellipse((side, side), c, c, r * 1.15, r)
        inner = _ellipse((side, side), c, c, r * 1.15 - 8, r - 8)
        skull_out = _ellipse((side, side), c, c, r * 1.15 - 2, r - 2)
        sl = vol[z]
        sl[head] = 20.0
        sl[skull_out] = 1200.0
        sl[inner] = 32.0 + 6 * (rng.random(inner.sum()) - 0.5)
    vol += rng.normal(0, 5, vol.shape).astype(np.float32)
    return Image(vol, spacing=(3.0, 1.4, 1.4), modality="CT", units="HU")


def abdomen_ct(n=30, side=160, seed=0) -> Image:
    """A trunk-sized body: fat rim, soft tissue (40 HU), liver (60 HU), a spine (900 HU), little bowel gas."""
    rng = np.random.default_rng(seed)
    vol = np.full((n, side, side), -1000.0, np.float32)
    for z in range(n):
        sl = vol[z]
        sl[_ellipse((side, side), 80, 80, 55, 75)] = -100.0
        sl[_ellipse((side, side), 80, 80, 48, 68)] = 40.0
        sl[_ellipse((side, side), 70, 50, 25, 28)] = 60.0
        sl[_ellipse((side, side), 118, 80, 9, 9)] = 900.0
        sl[_ellipse((side, side), 118, 80, 4, 4)] = 30.0
        for gy, gx in ((75, 105), (90, 95)):
            sl[_ellipse((side, side), gy, gx, 3, 4)] = -1000.0
    vol += rng.normal(0, 8, vol.shape).astype(np.float32)
    return Image(vol, spacing=(5.0, 2.5, 2.5), modality="CT", units="HU")


def test_real_chest_from_header(chest):
    r = recognize(chest.image, chest.header)
    assert (r.modality, r.body_region, r.recognized_from) == ("CT", "chest", "header+content")
    assert any("BodyPartExamined 'CHEST'" in e for e in r.evidence)


def test_real_chest_from_content_alone(chest):
    t = time.perf_counter()
    r = recognize(_strip(chest.image), {})
    dt = time.perf_counter() - t
    assert (r.modality, r.body_region, r.recognized_from) == ("CT", "chest", "content")
    assert any("looks like CT in HU" in e for e in r.evidence)
    assert dt < 1.0  # downsampled: ~0.1 s on 2 cores


def test_head_ct_is_head_not_chest():
    r = recognize(head_ct(), {"Modality": "CT"})
    assert r.body_region == "head", r.evidence


def test_head_ct_labelled_chest_trusts_content():
    r = recognize(head_ct(), {"Modality": "CT", "BodyPartExamined": "CHEST", "StudyDescription": "CT CHEST"})
    assert r.body_region == "head"
    assert any("header says chest but the content shows head" in e for e in r.evidence)


def test_head_ct_from_content_alone():
    r = recognize(_strip(head_ct()), {})
    assert (r.modality, r.body_region, r.recognized_from) == ("CT", "head", "content")


def test_abdomen_is_not_chest():
    r = recognize(abdomen_ct(), {"Modality": "CT"})
    assert r.body_region == "abdomen", r.evidence
    r2 = recognize(abdomen_ct(), {"Modality": "CT", "BodyPartExamined": "CHEST"})
    assert r2.body_region == "abdomen" and any("no lungs" in e for e in r2.evidence)


def test_abdominal_single_slice_is_not_chest():
    im = abdomen_ct(n=1)
    assert recognize(im, {"Modality": "CT"}).body_region != "chest"


def test_abdomen_header_kept_when_content_agrees():
    r = recognize(abdomen_ct(), {"Modality": "CT", "StudyDescription": "CT ABD PELVIS W CONTRAST"})
    assert r.body_region == "abdomen" and r.recognized_from == "header+content"


def test_real_mr_header():
    st = load_study(get_testdata_file("MR_small.dcm"))
    r = recognize(st.image, st.header)
    assert r.modality == "MR" and r.body_region == "unknown" and r.recognized_from == "header"


def test_enhanced_mr_head_header_is_brain():
    st = load_study(get_testdata_file("emri_small.dcm"))  # BodyPartExamined HEAD
    r = recognize(st.image, st.header)
    assert (r.modality, r.body_region) == ("MR", "brain")


def test_brain_mri_volume_without_header_is_not_chest(rng):
    vol = np.zeros((20, 64, 64), np.float32)
    vol[:, 8:56, 10:54] = 300 + 50 * rng.random((20, 48, 44))  # MR-like positive intensities
    r = recognize(Image(vol, spacing=(5, 3, 3)), {})
    assert r.body_region == "unknown" and r.modality == "OT" and r.recognized_from == "none"


def test_cr_chest_header():
    im = Image(np.zeros((1, 8, 8), np.float32), modality="CR")
    r = recognize(im, {"Modality": "CR", "BodyPartExamined": "CHEST", "ViewPosition": "PA"})
    assert (r.modality, r.body_region, r.recognized_from) == ("CR", "chest", "header")


def test_description_words_from_ontology():
    im = Image(np.zeros((1, 8, 8), np.float32))
    r = recognize(im, {"Modality": "MR", "SeriesDescription": "T1 posterior fossa"})
    assert r.body_region == "brain"
    r = recognize(im, {"Modality": "CT", "ProtocolName": "KIDNEY_STONE"})
    assert r.body_region == "abdomen"


def test_raster_without_header(shared_dataset):
    f = sorted((shared_dataset("chest_xray_pneumonia") / "test" / "NORMAL").glob("*.jpeg"))[0]
    st = load_study(f)
    r = recognize(st.image, st.header)
    assert (r.modality, r.body_region, r.recognized_from) == ("OT", "unknown", "none")


def test_hu_check():
    assert looks_like_hu(head_ct().array)[0]
    assert not looks_like_hu(np.linspace(0, 4000, 1000, dtype=np.float32))[0]


def test_regions_are_from_ontology():
    for im, h in ((head_ct(), {}), (abdomen_ct(), {}), (Image(np.zeros((1, 4, 4), np.float32)), {})):
        assert recognize(im, h).body_region in BODY_REGIONS


def test_real_upper_abdomen_slices_are_not_chest(chest):
    """The 18 most caudal slices of the real series (liver, no lung bases over 15%) -> abdomen."""
    im = chest.image
    sub = im.with_array(np.ascontiguousarray(im.array[:18]))
    r = recognize(sub, {"Modality": "CT", "BodyPartExamined": "CHEST"})
    assert r.body_region == "abdomen", r.evidence
    one = im.with_array(np.ascontiguousarray(im.array[3:4]))
    assert recognize(one, {"Modality": "CT"}).body_region == "abdomen"


def test_real_abdominal_ct_picture_is_never_chest(shared_dataset):
    f = sorted((shared_dataset("ct_kidney") / "Testing" / "Normal").glob("*.jpg"))[0]
    st = load_study(f)
    r = recognize(st.image, st.header)
    assert r.body_region != "chest" and r.recognized_from == "none"


def test_with_recognition_marks_hu_for_content_ct(chest):
    from radscribe.preprocess.recognize import with_recognition

    bare = _strip(chest.image)
    im = with_recognition(bare, recognize(bare, {}))
    assert (im.modality, im.units, im.body_part) == ("CT", "HU", "chest")
    assert im.array is bare.array  # no copy of the voxels
    mr = Image(np.ones((3, 8, 8), np.float32), modality="MR")
    assert with_recognition(mr, recognize(mr, {"Modality": "MR"})).units == "arbitrary"


# ------------------------------------------------------------------------------ a real head CT
#: InVesalius' example project "ProMED CT 0051": a real head CT (108 x 256 x 256 int16 HU, 0.957 mm
#: pixels, 1.5 mm slices, skull base to vertex, gantry-tilted), shipped by Debian's invesalius-examples.
CRANIUM = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")


@pytest.fixture(scope="module")
def head_real():
    """The real head CT as an Image, its header saying nothing but what the test passes."""
    if not CRANIUM.is_file():
        pytest.skip(f"needs the Debian package invesalius-examples ({CRANIUM}); absent here")
    with tarfile.open(CRANIUM, "r:gz") as tar:
        members = {Path(m.name).name: m for m in tar.getmembers()}
        main = plistlib.loads(tar.extractfile(members["main.plist"]).read())
        raw = tar.extractfile(members[main["matrix"]["filename"]]).read()
    shape = tuple(main["matrix"]["shape"])
    vol = np.frombuffer(raw, dtype=np.dtype(main["matrix"]["dtype"]).newbyteorder("<")).reshape(shape)
    sx, sy, sz = main["spacing"]
    assert main["modality"] == "CT" and shape == (108, 256, 256)
    return Image(vol.astype(np.float32), spacing=(float(sz), float(sy), float(sx)), modality="CT", units="HU")


def test_real_head_ct_with_head_header(head_real):
    """Before: the hole-filling skull test found 3/46 head slices and overrode the header to unknown."""
    r = recognize(head_real, {"Modality": "CT", "BodyPartExamined": "HEAD"})
    assert (r.modality, r.body_region, r.recognized_from) == ("CT", "head", "header+content"), r.evidence
    _, _, stats = content_region(head_real)
    assert stats["head_slice_fraction"] >= 0.4 and stats["lung_slice_fraction"] == 0.0, stats


def test_real_head_ct_from_content_alone(head_real, tmp_path):
    """Written as NIfTI (no modality, no body part) and read back: CT head from the voxels alone."""
    import nibabel as nib

    p = tmp_path / "head.nii.gz"
    sz, sy, sx = head_real.spacing
    nib.save(nib.Nifti1Image(np.asarray(head_real.array.transpose(2, 1, 0), np.int16),
                             np.diag([-sx, -sy, sz, 1.0])), p)
    st = load_study(p)
    r = recognize(st.image, st.header)
    assert (r.modality, r.body_region, r.recognized_from) == ("CT", "head", "content"), r.evidence


def test_real_head_ct_labelled_chest_is_head(head_real):
    r = recognize(head_real, {"Modality": "CT", "BodyPartExamined": "CHEST"})
    assert r.body_region == "head" and any("header says chest but the content shows head" in e for e in r.evidence)


def test_missing_skull_confirmation_keeps_a_head_header(head_real):
    """The skull-base slices alone (face, sinuses, petrous bones: no closed cranial cavity) give no
    head slices; with a head header that is no evidence against it."""
    base = head_real.with_array(np.ascontiguousarray(head_real.array[:30]))
    _, _, stats = content_region(base)
    assert stats["head_slice_fraction"] < 0.3
    r = recognize(base, {"Modality": "CT", "StudyDescription": "CT HEAD WO CONTRAST"})
    assert r.body_region == "head" and any("keeping the header" in e for e in r.evidence), r.evidence


def test_synthetic_head_without_skull_keeps_head_header():
    im = head_ct()
    a = np.where(im.array > 700, 40.0, im.array).astype(np.float32)  # skull erased
    r = recognize(im.with_array(a), {"Modality": "CT", "BodyPartExamined": "HEAD"})
    assert r.body_region == "head"


def test_lungs_in_a_head_study_overrule_the_header(chest):
    """Strong contrary evidence: a real chest CT labelled HEAD is recognised as chest."""
    r = recognize(chest.image, {"Modality": "CT", "BodyPartExamined": "HEAD", "StudyDescription": "CT HEAD"})
    assert r.body_region == "chest" and any("header says head but the content shows chest" in e for e in r.evidence)
