"""COV-CTR adapter: labeler targets with sides, the COVID label, prevalence and the dropped rare labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image as PILImage

from radscribe.data.cov_ctr import (
    COVID_LABEL, MultiLabelDataset, cov_ctr_splits, kept_labels, prevalence, read_entries, target_matrix,
)
from radscribe.errors import RadscribeInputError

REPORTS = [
    ("Ground glass opacity in the right lower lobe.", 1),
    ("Consolidation is seen in both lungs with ground glass shadows.", 1),
    ("The thorax is symmetrical. No abnormal density shadow was seen in the lungs.", 0),
]


def _fake_dataset(root):
    (root / "images").mkdir(parents=True)
    ann, k = {}, 0
    for split in ("train", "val", "test"):
        ann[split] = []
        for report, covid in REPORTS:
            a = np.full((40, 56), 30, np.uint8)
            a[10:20, 5 + k: 15 + k] = 220
            PILImage.fromarray(a).save(root / "images" / f"{k:04d}.jpg")
            ann[split].append({"id": f"cov{k:04d}", "image": f"images/{k:04d}.jpg", "report": report, "covid": covid})
            k += 1
    (root / "annotation.json").write_text(json.dumps(ann))
    return root


def test_targets_sides_and_dropped_labels_from_a_synthetic_release(tmp_path):
    entries = read_entries(_fake_dataset(tmp_path / "cov"))
    e0, e1, e2 = entries["train"]
    assert e0.findings == {"ground_glass_opacity": "right"}
    assert e1.findings == {"consolidation": None, "ground_glass_opacity": "bilateral"}  # side where stated
    assert e2.findings == {}                                     # "no abnormal density shadow": negated
    labels = (COVID_LABEL, "ground_glass_opacity", "consolidation", "effusion")
    assert target_matrix(entries["train"], labels).tolist() == [[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0]]
    kept, dropped = kept_labels(entries, labels, min_positives=2)
    assert kept == (COVID_LABEL, "ground_glass_opacity") and dropped == {"consolidation": 1, "effusion": 0}
    prev = prevalence(entries, labels)
    assert prev["val"]["ground_glass_opacity"]["sides"] == {"bilateral": 1, "right": 1}
    assert prev["test"][COVID_LABEL] == {"positives": 2, "n": 3, "fraction": pytest.approx(0.6667)}
    ds = cov_ctr_splits(kept, 32, splits=("val",), entries=entries, progress=False)["val"]
    assert isinstance(ds, MultiLabelDataset) and ds.images.shape == (3, 32, 32) and ds.images.dtype == np.uint8
    x, y = ds[1]
    assert tuple(x.shape) == (1, 32, 32) and float(x.max()) <= 1.0 and y.tolist() == [1, 1]


def test_a_malformed_annotation_is_an_input_error(tmp_path):
    (tmp_path / "annotation.json").write_text(json.dumps({"train": [{"id": 1}], "val": [], "test": []}))
    with pytest.raises(RadscribeInputError, match="malformed train entry"):
        read_entries(tmp_path)
    (tmp_path / "annotation.json").write_text("{")
    with pytest.raises(RadscribeInputError, match="cannot read COV-CTR"):
        read_entries(tmp_path)


def test_the_real_release_split_and_prevalence(shared_dataset):
    entries = read_entries(shared_dataset("cov_ctr"))
    assert [len(entries[s]) for s in ("train", "val", "test")] == [576, 72, 72]
    prev = prevalence(entries)
    assert prev["train"][COVID_LABEL]["positives"] == 266 and prev["test"][COVID_LABEL]["positives"] == 35
    kept, dropped = kept_labels(entries)
    assert kept == (COVID_LABEL, "ground_glass_opacity", "opacity", "consolidation", "nodule")
    assert dropped["effusion"] == 0 and dropped["lymphadenopathy"] <= 1
