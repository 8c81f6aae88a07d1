"""The one command-line entry point: ``radscribe <command> ...``.

Each sub-command's arguments are declared here; its work lives in the package step it belongs
to and is imported only when that command runs (so ``radscribe models`` does not load torch).
Bad input raises :class:`radscribe.errors.RadscribeInputError`, which becomes one ``error:``
line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from radscribe import __version__
from radscribe.data.paths import shared_data_dir
from radscribe.errors import RadscribeInputError

# command -> "module:function"; the function takes the parsed argparse.Namespace, returns an exit code.
COMMANDS = {
    "analyze": "radscribe.analyze:cli_analyze",
    "phantom": "radscribe.data.phantom:cli_phantom",
    "models": "radscribe.models.registry:cli_models",
    "train": "radscribe.train.loop:cli_train",
    "train-seg": "radscribe.train.segment:cli_train_seg",
    "evaluate": "radscribe.evaluate.classification:cli_evaluate",
    "evaluate-seg": "radscribe.evaluate.segmentation:cli_evaluate_seg",
    "predict": "radscribe.models.predict:cli_predict",
    "generate-reports": "radscribe.report.generate:cli_generate_reports",
    "evaluate-reports": "radscribe.evaluate.reports:cli_evaluate_reports",
    "label-reports": "radscribe.knowledge.labeler:cli_label_reports",
    "serve": "radscribe.serve.app:cli_serve",
}

SHARED_DATA = shared_data_dir()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="radscribe", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"radscribe {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    a = sub.add_parser("analyze", help="analyse a study and write findings.json, report.md and overlays")
    a.add_argument("path", type=Path, help="DICOM file or folder, NIfTI, MetaImage, NRRD, PNG or JPEG")
    a.add_argument("--out", type=Path, required=True, help="output folder (must not exist unless --overwrite)")
    a.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    a.add_argument("--series", help="SeriesInstanceUID to analyse when a folder holds several series")
    a.add_argument("--writer", default="structured", help="report writer: structured (default), llm-lora, llm-server")
    a.add_argument("--models", default="auto", help="'auto' (route by modality/region), 'none', or a comma list")

    ph = sub.add_parser("phantom", help="write a synthetic chest CT DICOM series with known nodules")
    ph.add_argument("--out", type=Path, required=True)
    ph.add_argument("--seed", type=int, default=0)
    ph.add_argument("--n-nodules", type=int, default=4)
    ph.add_argument("--shape", default="130,512,512", help="z,y,x voxels (default 130,512,512)")
    ph.add_argument("--overwrite", action="store_true")

    sub.add_parser("models", help="list the registered models with their labels and test metrics")

    t = sub.add_parser("train", help="train a model from a YAML config")
    t.add_argument("config", type=Path)
    t.add_argument("--out", type=Path, help="run folder (default: runs/<name>)")
    t.add_argument("--resume", action="store_true", help="resume from the last checkpoint in the run folder")
    t.add_argument("--overwrite", action="store_true")

    ts = sub.add_parser("train-seg", help="cross-validated 2D tumour segmentation training from a YAML config")
    ts.add_argument("config", type=Path)
    ts.add_argument("--fold", type=int, help="train one fold (0..4)")
    ts.add_argument("--folds", help="'all': train every fold in turn")
    ts.add_argument("--out", type=Path, required=True, help="run folder")
    ts.add_argument("--resume", action="store_true", help="continue each fold from its last checkpoint")
    ts.add_argument("--overwrite", action="store_true", help="start again in an existing run folder")

    e = sub.add_parser("evaluate", help="evaluate a registered model on a data split")
    e.add_argument("--model", required=True)
    e.add_argument("--split", default="test", choices=["train", "val", "test"])
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--overwrite", action="store_true")

    es = sub.add_parser("evaluate-seg", help="cross-validated tumour segmentation metrics of a train-seg run")
    es.add_argument("--run", type=Path, required=True, help="train-seg run folder (fold<K>/model.safetensors)")
    es.add_argument("--out", type=Path, required=True, help="output folder: metrics.json, per_image.csv, report.html")
    es.add_argument("--export", action="store_true", help="copy the test fold's model to the registry weights folder")
    es.add_argument("--threads", type=int, default=1)
    es.add_argument("--overwrite", action="store_true")

    pr = sub.add_parser("predict", help="per-image calibrated probabilities as CSV")
    pr.add_argument("--model", required=True)
    pr.add_argument("--out", type=Path, required=True)
    pr.add_argument("paths", type=Path, nargs="+")

    g = sub.add_parser("generate-reports", help="generate a report for every study of a split (JSONL)")
    g.add_argument("--annotation", type=Path, default=SHARED_DATA / "iu_xray_reports" / "r2gen_split_annotation.json")
    g.add_argument("--reports", type=Path, default=SHARED_DATA / "iu_xray_reports" / "indiana_reports.csv")
    g.add_argument("--split", default="test", choices=["train", "val", "test"])
    g.add_argument("--generator", required=True)
    g.add_argument("--findings", default="oracle", choices=["oracle", "indication"])
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--limit", type=int, help="only the first N studies (for quick checks)")
    g.add_argument("--no-guard", action="store_true", help="skip the findings-consistency guard")
    g.add_argument("--weights", type=Path, help="weights folder for learned generators (default: the committed one)")
    g.add_argument("--out", type=Path, required=True)

    er = sub.add_parser("evaluate-reports", help="score generated reports (JSONL of {id, generated[, reference]})")
    er.add_argument("input", type=Path)
    er.add_argument("--annotation", type=Path, default=SHARED_DATA / "iu_xray_reports" / "r2gen_split_annotation.json")
    er.add_argument("--split", default="test", choices=["train", "val", "test"])
    er.add_argument("--out", type=Path, required=True, help="JSON file with every metric")
    er.add_argument("--protocol", default="r2gen", choices=["r2gen", "clean"],
                    help="r2gen: R2Gen's cleaning, 59-token cut and <unk> vocabulary (default); clean: cleaning only")
    er.add_argument("--no-meteor", action="store_true", help="skip METEOR (it needs Java)")

    lr = sub.add_parser("label-reports", help="label reports with the rule-based labeler")
    lr.add_argument("--reports", type=Path, default=SHARED_DATA / "iu_xray_reports" / "indiana_reports.csv")
    lr.add_argument("--validate-mesh", action="store_true", help="compare with the MeSH coding and print P/R/F1")
    lr.add_argument("--out", type=Path)

    sv = sub.add_parser("serve", help="HTTP API + web page: upload studies, fetch findings, report, FHIR, SR")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; no authentication)")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--work-dir", type=Path, default=Path("out/serve"), help="job folders (default out/serve)")
    sv.add_argument("--keep-uploads", action="store_true", help="keep each job's uploaded files after analysis")
    sv.add_argument("--max-upload-mb", type=int, default=1024, help="largest upload in MiB (default 1024)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module, func = COMMANDS[args.command].split(":")
    try:
        fn = getattr(importlib.import_module(module), func)
        return int(fn(args) or 0)
    except RadscribeInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
