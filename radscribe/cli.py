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
import textwrap
import warnings
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
    "train-ct-slice": "radscribe.train.ct_slice:cli_train_ct_slice",
    "evaluate": "radscribe.evaluate.classification:cli_evaluate",
    "evaluate-seg": "radscribe.evaluate.segmentation:cli_evaluate_seg",
    "predict": "radscribe.models.predict:cli_predict",
    "domain": "radscribe.evaluate.domain:cli_domain",
    "generate-reports": "radscribe.report.generate:cli_generate_reports",
    "evaluate-reports": "radscribe.evaluate.reports:cli_evaluate_reports",
    "label-reports": "radscribe.evaluate.labeler:cli_label_reports",
    "audit-reports": "radscribe.evaluate.audit:cli_audit_reports",
    "serve": "radscribe.serve.app:cli_serve",
    "train-lora": "radscribe.train.llm_lora:cli_train_lora",
    "compare-decoding": "radscribe.evaluate.decoding:cli_compare_decoding",
    "sample-lora": "radscribe.report.llm_lora:cli_sample_lora",
    "train-scratch": "radscribe.train.scratch:cli_train_scratch",
    "guard-stats": "radscribe.evaluate.guard:cli_guard_stats",
    "duplicates": "radscribe.data.duplicates:cli_duplicates",
    "localize": "radscribe.evaluate.localization:cli_localize",
    "recalibrate": "radscribe.train.recalibrate:cli_recalibrate",
    "token": "radscribe.serve.auth:cli_token",
    "batch": "radscribe.serve.batch:cli_batch",
    "watch-orthanc": "radscribe.serve.watch:cli_watch_orthanc",
    "nodule-fpr-data": "radscribe.train.nodule_fpr:cli_fpr_data",
    "train-nodule-fpr": "radscribe.train.nodule_fpr:cli_train_fpr",
    "train-nodule3d": "radscribe.train.nodule3d:cli_train_nodule3d",
    "evaluate-nodule3d": "radscribe.train.nodule3d_eval:cli_evaluate_nodule3d",
}

SHARED_DATA = shared_data_dir()


def _detector_names() -> tuple[str, ...]:
    from radscribe.models.detector import DETECTORS

    return tuple(DETECTORS)


def _writer_names() -> tuple[str, ...]:
    from radscribe.report.generate import GENERATORS

    return tuple(GENERATORS)


class _LazyHelp(argparse.Action):
    """Stores one value; its help may be a callable, evaluated only when help is printed: the names
    come from the registries, and building the parser must not import the detectors."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)

    @property
    def help(self):  # noqa: A003 - argparse's attribute name
        h = self.__dict__.get("_help")
        return h() if callable(h) else h

    @help.setter
    def help(self, value):
        self.__dict__["_help"] = value


class _NoHyphenBreaks(argparse.HelpFormatter):
    """Help lines wrapped at spaces only: detector names such as ``mri-brain-tumor-seg`` stay whole."""

    def _split_lines(self, text, width):
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="radscribe", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"radscribe {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    a = sub.add_parser("analyze", help="analyse studies and write findings.json, report.md and overlays",
                       formatter_class=_NoHyphenBreaks)
    a.add_argument("path", type=Path, nargs="+", metavar="PATH",
                   help="DICOM file or folder, NIfTI, MetaImage, NRRD, PNG or JPEG; several PATHs share one session")
    a.add_argument("--out", type=Path, required=True,
                   help="output folder (must not exist unless --overwrite); with several PATHs, the parent of "
                        "one folder per study")
    a.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    a.add_argument("--series", help="SeriesInstanceUID to analyse when a folder holds several series")
    a.add_argument("--writer", default="structured", action=_LazyHelp,
                   help=lambda: f"report writer: {', '.join(_writer_names())} (default structured)")
    a.add_argument("--models", default="auto", action=_LazyHelp,
                   help=lambda: "'auto' (every detector that applies, the default), 'none', or a comma list of: "
                                + ", ".join(_detector_names()))

    ph = sub.add_parser("phantom", help="write a synthetic chest CT DICOM series with known nodules")
    ph.add_argument("--out", type=Path, required=True)
    ph.add_argument("--seed", type=int, default=0)
    ph.add_argument("--n-nodules", type=int, default=4)
    ph.add_argument("--n-masses", type=int, default=0, help="lung masses of 30-70 mm (pleural, mediastinal, hilar)")
    ph.add_argument("--shape", default="130,512,512", help="z,y,x voxels (default 130,512,512)")
    ph.add_argument("--overwrite", action="store_true")

    sub.add_parser("models", help="list the registered models with their labels and test metrics")

    t = sub.add_parser("train", help="train a model from a YAML config")
    t.add_argument("config", type=Path)
    t.add_argument("--out", type=Path, help="run folder (default: runs/<name>)")
    t.add_argument("--resume", action="store_true", help="resume from the last checkpoint in the run folder")
    t.add_argument("--overwrite", action="store_true")
    t.add_argument("--stop-after-epochs", type=int, metavar="N",
                   help="end this call after N epochs; continue later with --resume (e.g. in the next session)")

    ts = sub.add_parser("train-seg", help="cross-validated 2D tumour segmentation training from a YAML config")
    ts.add_argument("config", type=Path)
    ts.add_argument("--fold", type=int, help="train one fold (0..4)")
    ts.add_argument("--folds", help="'all': train every fold in turn")
    ts.add_argument("--out", type=Path, required=True, help="run folder")
    ts.add_argument("--resume", action="store_true", help="continue each fold from its last checkpoint")
    ts.add_argument("--overwrite", action="store_true", help="start again in an existing run folder")

    tc = sub.add_parser("train-ct-slice", help="train the ct-chest-slice multi-label detector on COV-CTR")
    tc.add_argument("config", type=Path)
    tc.add_argument("--out", type=Path, help="run folder (default: runs/ct-chest-slice)")
    tc.add_argument("--resume", action="store_true", help="resume from the last checkpoint in the run folder")
    tc.add_argument("--overwrite", action="store_true")
    tc.add_argument("--stop-after-epochs", type=int, metavar="N", help="end this call after N epochs")

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

    pr = sub.add_parser("predict", help="per-image calibrated probabilities as CSV",
                        description="Calibrated probabilities per image as CSV (path,label,p_<label>...); files the "
                        "model does not apply to are skipped with a warning.",
                        epilog="Axis order of volumes (ct-adrenal3d): every volume is read into a (z, y, x) array; "
                        "NIfTI voxel (i, j, k) becomes index (k, j, i), MetaImage/NRRD arrays come as SimpleITK "
                        "gives them. The crop is resized to 28^3 (spacing is not used). ct-adrenal3d was trained "
                        "on every axis order and flip of the AdrenalMNIST3D arrays and averages its logits over "
                        "the 6 axis orders, so the order in which a file stores its axes does not change the "
                        "prediction: an npz array saved with nibabel.Nifti1Image(volume, numpy.eye(4)) (read back "
                        "transposed) gives the same probabilities as the array itself.")
    pr.add_argument("--model", required=True, help="registered model name (radscribe models)")
    pr.add_argument("--out", type=Path, required=True, help="CSV file to write (atomically)")
    pr.add_argument("paths", type=Path, nargs="+", metavar="PATH", help="image files or folders (recursive)")

    dm = sub.add_parser("domain", help="train or evaluate the content-based domain classifier used by routing")
    dm.add_argument("action", choices=["train", "evaluate"])
    dm.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "models" / "weights" / "domain",
                    help="weights folder written (train) or read (evaluate); default: the committed one")
    dm.add_argument("--input-size", type=int, help="train: input side in pixels (default 128)")
    dm.add_argument("--json", type=Path, help="evaluate: also write the results to this file")

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

    au = sub.add_parser("audit-reports", help="second reader: placeholders, contradictions, side, severity, sizes, "
                                              "stutter in a JSONL of reports")
    au.add_argument("input", type=Path, help="JSONL of {id, generated[, reference, unguarded, findings]}")
    au.add_argument("--field", default="generated", choices=["generated", "unguarded", "reference"],
                    help="which text of each row to audit (default generated)")
    au.add_argument("--findings", default="oracle", choices=["oracle", "indication", "none"],
                    help="findings for rows without 'findings': IU MeSH oracle (default), indication, or none")
    au.add_argument("--annotation", type=Path, default=SHARED_DATA / "iu_xray_reports" / "r2gen_split_annotation.json")
    au.add_argument("--reports", type=Path, default=SHARED_DATA / "iu_xray_reports" / "indiana_reports.csv")
    au.add_argument("--out", type=Path, help="JSON file with per-report problems and totals")

    lr = sub.add_parser("label-reports", help="label reports with the rule-based labeler")
    lr.add_argument("--reports", type=Path, default=SHARED_DATA / "iu_xray_reports" / "indiana_reports.csv")
    lr.add_argument("--validate-mesh", action="store_true", help="compare with the MeSH coding and print P/R/F1")
    lr.add_argument("--out", type=Path)

    sv = sub.add_parser("serve", help="HTTP API + web page: upload studies, fetch findings, report, FHIR, SR")
    sv.add_argument("--host", default="127.0.0.1",
                    help="address to bind (default 127.0.0.1; any other address needs tokens: radscribe token create)")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--work-dir", type=Path, default=Path("out/serve"),
                    help="job folders, job table and tokens (default out/serve)")
    sv.add_argument("--db", help="job table URL (default sqlite:///WORK_DIR/jobs.db; e.g. postgresql+psycopg://...)")
    sv.add_argument("--workers", type=int, default=1, help="worker processes, each with its models loaded (default 1)")
    sv.add_argument("--keep-uploads", action="store_true", help="keep each job's uploaded files after analysis")
    sv.add_argument("--keep-days", type=float, help="delete finished jobs this many days old (default: keep)")
    sv.add_argument("--max-upload-mb", type=int, help="largest upload in MiB (default: sized to the free disk, <= 1024)")
    sv.add_argument("--max-queued", type=int, default=16, help="jobs that may wait; more are refused with 503")
    sv.add_argument("--allowed-host", action="append", metavar="NAME",
                    help="a Host name clients use to reach the server (repeatable; loopback names always work)")
    sv.add_argument("--cors-origin", action="append", metavar="ORIGIN",
                    help="a web origin allowed to call the API from a browser (repeatable; default: none)")
    sv.add_argument("--pacs-url", help="DICOMweb base URL of the PACS for /v1/pacs jobs (e.g. Orthanc's /dicom-web)")

    wo = sub.add_parser("watch-orthanc", help="submit every new (stable) study of an Orthanc PACS to a radscribe server",
                        description="Polls Orthanc's /changes for StableStudy events and submits each study as a "
                                    "PACS job to SERVER (which must run with --pacs-url). The token is read from "
                                    "the RADSCRIBE_TOKEN environment variable, never from the command line.")
    wo.add_argument("--orthanc", required=True, help="Orthanc's REST root, e.g. http://127.0.0.1:8042")
    wo.add_argument("--server", required=True, help="the radscribe server, e.g. http://127.0.0.1:8000")
    wo.add_argument("--state", type=Path, default=Path("out/serve/orthanc-watch.json"),
                    help="where the last change handled is kept (a restart continues from it)")
    wo.add_argument("--interval", type=float, default=10.0, help="seconds between polls (default 10)")
    wo.add_argument("--writer", default="structured")
    wo.add_argument("--models", default="auto")
    wo.add_argument("--once", action="store_true", help="handle the pending changes once and exit")

    fd = sub.add_parser("nodule-fpr-data", help="candidate cubes from phantoms for the nodule false-positive reducer")
    fd.add_argument("--seeds", required=True, help="phantom seeds, e.g. 2000-2031 (0-19 are evaluation seeds)")
    fd.add_argument("--out", type=Path, required=True, help="FILE.npz (per-seed parts beside it: resumable)")
    fd.add_argument("--n-nodules", type=int, default=8)
    ft = sub.add_parser("train-nodule-fpr", help="train the nodule false-positive reducer on nodule-fpr-data cubes")
    ft.add_argument("--train", type=Path, required=True)
    ft.add_argument("--val", type=Path, required=True)
    ft.add_argument("--out", type=Path, required=True, help="folder for model.safetensors + config.json")
    ft.add_argument("--epochs", type=int, default=8)
    ft.add_argument("--steps", type=int, default=150, help="batches per epoch")
    ft.add_argument("--seed", type=int, default=0)

    tk = sub.add_parser("token", help="create, list or revoke the API tokens of a server's work folder")
    tk.add_argument("action", choices=["create", "list", "revoke"])
    tk.add_argument("--name", help="who or what uses the token (create, revoke)")
    tk.add_argument("--work-dir", type=Path, default=Path("out/serve"), help="the server's work folder")
    tk.add_argument("--rate-per-min", type=int, default=600, help="requests a minute for this token (default 600)")
    tk.add_argument("--quota-mb", type=int, default=0, help="disk its jobs may hold in MiB (default: server's)")

    bt = sub.add_parser("batch", help="analyse every study of an index CSV or a folder (resumable; local or Ray)")
    bt.add_argument("source", type=Path, help="index .csv (column path; optional id, series_uid) or a folder")
    bt.add_argument("--out", type=Path, required=True, help="one sub-folder per study, batch.jsonl, summary.json")
    bt.add_argument("--engine", choices=["local", "ray"], default="local")
    bt.add_argument("--workers", type=int, default=1, help="Ray worker actors, each with one session (default 1)")
    bt.add_argument("--address", help="Ray cluster to join (default: start a local one)")
    bt.add_argument("--writer", default="structured")
    bt.add_argument("--models", default="auto")
    bt.add_argument("--limit", type=int, help="only the first N studies")
    _add_research_commands(sub)
    return p


def _add_research_commands(sub) -> None:
    """Training, evaluation and data-check commands (each writes what docs/parts/*.md reports)."""
    iu = SHARED_DATA / "iu_xray_reports"

    tl = sub.add_parser("train-lora", help="train the LoRA adapter of the llm-lora writer from a YAML config")
    tl.add_argument("--config", type=Path, help="YAML config (default: the shipped adapter's config.yaml)")
    tl.add_argument("--out", type=Path, help="folder for the adapter (default: the config's out, else the shipped folder)")
    tl.add_argument("--limit", type=int, help="only the first N train/val examples (smoke test)")

    cd = sub.add_parser("compare-decoding", help="score llm-lora decoding settings on a split (one model load)")
    cd.add_argument("--annotation", type=Path, default=iu / "r2gen_split_annotation.json")
    cd.add_argument("--reports", type=Path, default=iu / "indiana_reports.csv")
    cd.add_argument("--split", default="val", choices=["train", "val", "test"])
    cd.add_argument("--weights", type=Path, help="adapter folder (default: the shipped one)")
    cd.add_argument("--settings", default="3:c,1:c,3:u",
                    help="';'-separated settings, each key=value,... of the decode section (e.g. "
                         "'num_beams=3,length_penalty=2.0;num_beams=1'), or the short form beams:c|u,...")
    cd.add_argument("--batch-size", type=int, default=8)
    cd.add_argument("--threads", type=int, default=1)
    cd.add_argument("--limit", type=int, help="only the first N studies")
    cd.add_argument("--out", type=Path, required=True, help="JSON file with every setting's scores")

    sl = sub.add_parser("sample-lora", help="print the llm-lora report for a findings line, e.g. 'cardiomegaly;effusion:left'")
    sl.add_argument("findings", help="';'-separated finding kind ids, each optionally ':side'")
    sl.add_argument("--weights", type=Path, help="adapter folder (default: the shipped one)")

    ts = sub.add_parser("train-scratch", help="train the from-scratch report decoder on IU X-ray train (early stop on val)")
    ts.add_argument("--annotation", type=Path, default=iu / "r2gen_split_annotation.json")
    ts.add_argument("--reports", type=Path, default=iu / "indiana_reports.csv")
    ts.add_argument("--seed", type=int, default=0)
    ts.add_argument("--out", type=Path, required=True, help="weights folder (a checkpoint is kept there while training)")
    ts.add_argument("--threads", type=int, default=1)
    ts.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a ScratchConfig field")

    gs = sub.add_parser("guard-stats", help="how often the consistency guard changes the reference reports of a split")
    gs.add_argument("--annotation", type=Path, default=iu / "r2gen_split_annotation.json")
    gs.add_argument("--reports", type=Path, default=iu / "indiana_reports.csv")
    gs.add_argument("--split", default="val", choices=["train", "val", "test"])
    gs.add_argument("--top", type=int, default=15, help="how many of the most frequent reasons to list")

    du = sub.add_parser("duplicates", help="exact and near-duplicate images between a dataset's train and test splits")
    du.add_argument("datasets", nargs="+", help="dataset folder names under the shared data folder")
    du.add_argument("--max-distance", type=int, help="largest pHash Hamming distance of a near pair (default 4)")
    du.add_argument("--json", type=Path, help="write every pair to this JSON file")

    lo = sub.add_parser("localize", help="Grad-CAM localisation of a registered model against segmentation masks")
    lo.add_argument("--model", default="mri-brain-tumor")
    lo.add_argument("--threshold", type=float, default=0.5, help="heatmap fraction of its maximum for the box")
    lo.add_argument("--json", type=Path, help="write the scores (with every image) to this JSON file")

    n3 = sub.add_parser("train-nodule3d", help="one fold of the LIDC 3D nodule segmentation + characterisation CV")
    n3.add_argument("config", type=Path)
    n3.add_argument("--fold", type=int, required=True, help="fold 0..4 (grouped by case, stratified by texture)")
    n3.add_argument("--out", type=Path, help="run folder (default: runs/<name>)")
    n3.add_argument("--resume", action="store_true", help="continue the fold from its last epoch")
    n3.add_argument("--overwrite", action="store_true")
    e3 = sub.add_parser("evaluate-nodule3d", help="5-fold LIDC nodule figures of a train-nodule3d run vs the HU rule")
    e3.add_argument("run_dir", type=Path)

    rc = sub.add_parser("recalibrate", help="refit a registered model's temperature on its validation split")
    rc.add_argument("--model", required=True)


def main(argv: list[str] | None = None) -> int:
    """Run one command. Bad input -> exactly one ``error: ...`` line on stderr and exit code 2.

    Warnings raised while a command runs (library deprecations, nibabel on a zero pixdim, ...) are
    held back: they would print before the error line. They are shown, one line each, after a
    command that succeeds; ``serve`` keeps them live, since it runs until stopped.
    """
    args = build_parser().parse_args(argv)
    module, func = COMMANDS[args.command].split(":")
    live = args.command == "serve"
    with warnings.catch_warnings(record=not live) as held:
        try:
            fn = getattr(importlib.import_module(module), func)
            rc = int(fn(args) or 0)
        except RadscribeInputError as exc:
            print(f"error: {' '.join(str(exc).split()) or type(exc).__name__}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 130
    for w in dict.fromkeys(f"warning: {w.category.__name__}: {' '.join(str(w.message).split())}"
                           for w in held or ()):
        print(w, file=sys.stderr)
    return rc
