"""`make demo` runs radscribe.demo: it must work on a fresh clone (no dataset needed)."""

import json

from radscribe.demo import _phantom_hits, main
from radscribe.findings.model import Analysis


def test_demo_analyses_the_phantom_and_every_example(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "phantom-analysis" in printed
    folders = sorted(p.name for p in out.iterdir())
    assert "phantom" in folders and "phantom-analysis" in folders
    assert len(folders) == 2 + 4  # the phantom, its analysis and one folder per example image
    for name in folders:
        if name != "phantom":
            doc = json.loads((out / name / "findings.json").read_text())
            assert doc["report"]["findings"] and (out / name / "report.md").exists()
    phantom = json.loads((out / "phantom-analysis" / "findings.json").read_text())
    assert phantom["study"]["body_region"] == "chest" and phantom["detectors_run"] == ["lung-nodule-classic"]
    score = _phantom_hits(Analysis.from_dict(phantom), out / "phantom" / "truth.json")
    assert score.startswith("found ") and "of 4 true nodules" in score
    assert int(score.split()[1]) >= 2  # seed 0: at least the larger nodules are found
