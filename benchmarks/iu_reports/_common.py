"""Shared by the scripts here: the IU test studies and the findings a JSONL file was generated from."""
from radscribe.data.iu_xray import load_iu
from radscribe.data.paths import shared_data_dir


def test_studies() -> dict:
    """R2Gen test id -> IUStudy."""
    iu = shared_data_dir() / "iu_xray_reports"
    return {s.id: s for s in load_iu(iu / "r2gen_split_annotation.json", iu / "indiana_reports.csv")["test"]}


def findings_for(path: str, study):
    """The findings a runs/gen2 file's reports were written from: oracle files say so in their name."""
    return study.oracle if "-oracle" in path else study.from_indication
