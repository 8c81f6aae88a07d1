"""Shared by the scripts here: the IU studies of a split and the findings a JSONL file was generated from."""
from radscribe.data.iu_xray import load_iu
from radscribe.data.paths import shared_data_dir


def split_studies(split: str = "test", annotation=None, reports=None) -> dict:
    """R2Gen ``split`` id -> IUStudy (files default to ../shared/data/iu_xray_reports)."""
    iu = shared_data_dir() / "iu_xray_reports"
    splits = load_iu(annotation or iu / "r2gen_split_annotation.json", reports or iu / "indiana_reports.csv")
    return {s.id: s for s in splits[split]}


def test_studies() -> dict:
    """R2Gen test id -> IUStudy."""
    return split_studies("test")


def findings_for(path: str, study):
    """The findings a runs/gen2 file's reports were written from: oracle files say so in their name."""
    return study.oracle if "-oracle" in path else study.from_indication
