"""radscribe batch: a folder or an index CSV, resumable, failures recorded without stopping; local and Ray engines."""

from __future__ import annotations

import json
import os

import pytest

from radscribe.cli import main
from radscribe.serve.batch import list_studies, run_batch
from tests.serve.conftest import png_bytes


@pytest.fixture()
def folder(tmp_path):
    d = tmp_path / "studies"
    d.mkdir()
    for k in range(3):
        (d / f"cxr{k}.png").write_bytes(png_bytes(k))
    (d / "broken.png").write_bytes(b"not a png at all")
    (d / ".hidden").write_text("skipped")
    return d


def _ledger(out):
    return [json.loads(line) for line in (out / "batch.jsonl").read_text().splitlines()]


def test_local_batch_records_failures_and_resumes(folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["batch", str(folder), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "1 study(ies) failed" in err and "studies" in err  # the summary table and the failure line
    s = json.loads((out / "summary.json").read_text())
    assert (s["studies"], s["done"], s["failed"], s["skipped"]) == (4, 3, 1, 0)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["cxr0", "cxr1", "cxr2"]
    (bad,) = [r for r in _ledger(out) if r["status"] == "failed"]
    assert bad["id"] == "broken" and bad["error"].startswith("error: ") and "\n" not in bad["error"]
    again = run_batch(folder, out, progress=False)  # the re-run skips what is done, tries the failed one again
    assert (again["skipped"], again["done"], again["failed"]) == (3, 0, 1)
    assert len(_ledger(out)) == 5


def test_index_csv_with_relative_paths(folder, tmp_path):
    index = folder / "index.csv"
    index.write_text("id,path\nfirst,cxr0.png\nfirst,cxr1.png\n")
    studies = list_studies(index)
    assert [s.id for s in studies] == ["first", "first-2"] and studies[1].path.endswith("cxr1.png")
    s = run_batch(index, tmp_path / "out", progress=False)
    assert s["done"] == 2 and (tmp_path / "out" / "first-2" / "findings.json").is_file()
    assert main(["batch", str(tmp_path / "nothing.txt"), "--out", str(tmp_path / "o")]) == 2


@pytest.mark.slow
def test_ray_engine_two_actors(folder, tmp_path):
    pytest.importorskip("ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    out = tmp_path / "out"
    s = run_batch(folder, out, engine="ray", workers=2, progress=False)
    assert (s["done"], s["failed"], s["workers"]) == (3, 1, 2)
    assert all((out / f"cxr{k}" / "findings.json").is_file() for k in range(3))
    assert run_batch(folder, out, engine="ray", workers=2, progress=False)["skipped"] == 3
