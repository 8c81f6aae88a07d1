"""HTTP API and web page for radscribe: upload a study, poll the job, fetch findings / report / FHIR / SR.

``create_app(work_dir)`` builds the FastAPI app; ``radscribe serve`` runs it with uvicorn. Uploads are
streamed into a job folder and analysed one at a time by a background worker (see
:mod:`radscribe.serve.jobs`); every error answer is JSON ``{"error": "<one line>"}``. There is no
authentication: the server binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import json
import re
import sys
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from radscribe import __version__
from radscribe.serve.jobs import ARTIFACTS, JOB_ID, Job, JobStore
from radscribe.serve.upload import MIB, Limits, UploadRejected, receive_multipart

API = "/v1/studies"
WRITER = re.compile(r"^[a-z0-9-]{1,40}$")


# ---- response models (they make /docs and /openapi.json describe the API) ---------------------
class ErrorBody(BaseModel):
    error: str = Field(description="one line saying what is wrong and what to do")


class JobCreated(BaseModel):
    job_id: str
    status: str = Field(description="queued")
    links: dict[str, Any]


class JobStatus(BaseModel):
    job_id: str
    status: str = Field(description="queued | running | done | failed")
    created: str
    started: str | None = None
    finished: str | None = None
    elapsed_s: float | None = Field(None, description="analysis wall time in seconds (done/failed)")
    jobs_ahead: int = Field(0, description="jobs queued or running before this one")
    error: str | None = Field(None, description="failed jobs: radscribe's one-line message")
    error_kind: str | None = Field(None, description="'input' (the study was refused) or 'internal' (a bug)")
    input: dict[str, Any] = Field(description="files (count), bytes (their total size, unpacked), names (first 20), "
                                             "unpacked_zip (the zip's name when one was sent)")
    options: dict[str, str]
    links: dict[str, Any] = Field(description="relative URLs of this job's files (when done)")
    analysis: dict[str, Any] | None = Field(
        None, description="when done: the content of findings.json (radscribe/findings/findings.schema.json)")


class Health(BaseModel):
    status: str
    version: str
    detectors: list[dict[str, Any]]
    queue_length: int = Field(description="jobs waiting for the worker")
    running: int
    limits: dict[str, int]


def _err(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


def available_detectors() -> list[dict[str, Any]]:
    """The detectors ``analyze`` can route to, and whether their weights are installed."""
    from radscribe.analyze import NODULE_DETECTOR
    from radscribe.models.registry import list_specs

    out: list[dict[str, Any]] = [{"name": NODULE_DETECTOR, "reads": "CT chest volume in HU", "available": True,
                                  "description": "classical lung-nodule candidate detector with Fleischner 2017 "
                                                 "follow-up"}]
    for s in list_specs():
        ready = all((Path(s.weights_dir) / f).is_file() for f in ("model.safetensors", "config.yaml"))
        out.append({"name": s.name, "reads": f"{s.modality} {s.body_region} {s.dims}D", "description": s.description,
                    "available": ready})
    return out


def _check_options(fields: dict[str, str], known: list[str]) -> tuple[str, str]:
    writer = fields.get("writer") or "structured"
    models = fields.get("models") or "auto"
    if not WRITER.match(writer):
        raise UploadRejected(f"writer {writer[:60]!r} is not a writer name; use structured, llm-lora or llm-server")
    if models not in ("auto", "none"):
        for m in (m.strip() for m in models.split(",")):
            if m not in known:
                raise UploadRejected(f"unknown model {m[:60]!r} in 'models'; use auto, none or a comma list of: "
                                     f"{', '.join(known)}")
    return writer, models


_UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["files"], "properties": {
        "files": {"type": "array", "items": {"type": "string", "format": "binary"},
                  "description": "one image (DICOM, NIfTI, MetaImage .mhd + .raw, NRRD, PNG, JPEG), the files of "
                                 "one DICOM series, or one .zip of a series"},
        "writer": {"type": "string", "default": "structured", "description": "report writer"},
        "models": {"type": "string", "default": "auto",
                   "description": "'auto' (route by modality/region), 'none', or a comma list of detector names"},
    }}}}}}


def create_app(work_dir: Path, *, keep_uploads: bool = False, limits: Limits | None = None,
               store: JobStore | None = None) -> FastAPI:
    """The radscribe web app; jobs live under ``work_dir/jobs``. ``store`` replaces the job store (tests)."""
    limits = limits or Limits()
    store = store or JobStore(Path(work_dir), keep_uploads=keep_uploads)
    detector_names = [d["name"] for d in available_detectors()]

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        store.close(timeout=1.0)

    app = FastAPI(title="radscribe", version=__version__, lifespan=lifespan,
                  description="Upload a study (DICOM series, NIfTI, MetaImage, NRRD, PNG/JPEG), poll the job, "
                              "fetch findings.json, report.md, FHIR DiagnosticReport and DICOM SR. Research "
                              "software, not a medical device: every finding must be reviewed by a radiologist.")
    app.state.store = store
    app.state.limits = limits

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return _err(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return _err(422, f"invalid request: {where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(UploadRejected)
    async def _rejected(_: Request, exc: UploadRejected) -> JSONResponse:
        return _err(exc.status, str(exc))

    def _job(job_id: str) -> Job:
        job = store.get(job_id) if JOB_ID.match(job_id) else None
        if job is None:
            raise HTTPException(404, f"no job {job_id[:64]!r}; it never existed or was deleted")
        return job

    def _links(job: Job) -> dict[str, Any]:
        base = f"{API}/{job.job_id}"
        links: dict[str, Any] = {"self": base}
        if job.status == "done":
            for name in ARTIFACTS:
                if store.artifact(job.job_id, name):
                    links[name] = f"{base}/{name}"
            links["overlays"] = [f"{base}/overlays/{n}" for n in store.overlays(job.job_id)]
        return links

    def _status(job: Job) -> dict[str, Any]:
        analysis = None
        if job.status == "done":
            path = store.artifact(job.job_id, "findings.json")
            analysis = None if path is None else json.loads(path.read_text())
        elapsed = None if job.started is None or job.finished is None else round(job.finished - job.started, 3)
        return {
            "job_id": job.job_id, "status": job.status, "created": _iso(job.created), "started": _iso(job.started),
            "finished": _iso(job.finished), "elapsed_s": elapsed, "jobs_ahead": store.ahead(job.job_id),
            "error": job.error, "error_kind": job.error_kind,
            "input": {"files": job.input_files, "bytes": job.input_bytes, "names": job.input_names,
                      "unpacked_zip": job.unpacked_zip},
            "options": {"writer": job.writer, "models": job.models},
            "links": _links(job), "analysis": analysis,
        }

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        html = resources.files("radscribe.serve").joinpath("static/index.html").read_text(encoding="utf-8")
        return HTMLResponse(html, headers={
            "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
                                       "style-src 'self' 'unsafe-inline'; img-src 'self' data:"})

    @app.get("/health", response_model=Health, summary="version, detectors, queue length, limits")
    def health() -> dict[str, Any]:
        c = store.counts()
        return {"status": "ok", "version": __version__, "detectors": available_detectors(), "queue_length": c["queued"],
                "running": c["running"], "limits": limits.to_dict()}

    @app.post(API, status_code=202, response_model=JobCreated, openapi_extra=_UPLOAD_BODY,
              summary="upload a study; returns a job id at once",
              responses={400: {"model": ErrorBody}, 413: {"model": ErrorBody}, 415: {"model": ErrorBody},
                         503: {"model": ErrorBody}})
    async def post_study(request: Request) -> Any:
        """Multipart upload of one file, the files of one DICOM series, or one .zip. Optional form fields
        ``writer`` (default structured) and ``models`` (default auto). The analysis runs in the background:
        poll ``GET /v1/studies/{job_id}``."""
        if store.counts()["queued"] >= limits.max_queued:
            return _err(503, f"{limits.max_queued} jobs are already waiting; try again in a minute",
                        {"Retry-After": "30"})
        job_id = store.reserve()
        try:
            up = await receive_multipart(request.headers.get("content-type", ""),
                                         request.headers.get("content-length"), request.stream(),
                                         store.input_dir(job_id), limits)
            writer, models = _check_options(up.fields, detector_names)
        except BaseException:
            store.discard(job_id)
            raise
        job = store.submit(job_id, writer=writer, models=models, files=up.files,
                           n_bytes=sum(p.stat().st_size for p in up.files),
                           unpacked_zip=up.unpacked_zip)
        return JSONResponse({"job_id": job.job_id, "status": job.status, "links": _links(job)}, status_code=202,
                            headers={"Location": f"{API}/{job.job_id}"})

    @app.get(API + "/{job_id}", response_model=JobStatus, responses={404: {"model": ErrorBody}},
             summary="job status; when done, the findings.json content under 'analysis'")
    def get_study(job_id: str) -> dict[str, Any]:
        return _status(_job(job_id))

    def _file(job_id: str, rel: str) -> FileResponse:
        job = _job(job_id)
        if job.status in ("queued", "running"):
            raise HTTPException(409, f"job {job_id} is {job.status}; poll {API}/{job_id} until its status is done")
        if job.status == "failed":
            raise HTTPException(404, f"job {job_id} failed ({job.error}); it has no {rel}")
        path = store.artifact(job_id, rel)
        if path is None:
            why = " (only DICOM inputs get a DICOM SR)" if rel == "report.sr.dcm" else ""
            raise HTTPException(404, f"{rel[:80]} is not part of job {job_id}'s output{why}")
        name = path.name
        media = ARTIFACTS.get(name, "image/png")
        headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
        disposition = "attachment" if name.endswith(".dcm") else "inline"
        return FileResponse(path, media_type=media, headers=headers, filename=name,
                            content_disposition_type=disposition)

    file_responses = {404: {"model": ErrorBody}, 409: {"model": ErrorBody}}

    @app.get(API + "/{job_id}/overlays/{name}", responses=file_responses, summary="an overlay PNG of a done job")
    def get_overlay(job_id: str, name: str) -> FileResponse:
        return _file(job_id, f"overlays/{name}")

    @app.get(API + "/{job_id}/{artifact}", responses=file_responses,
             summary="report.md, findings.json, report.fhir.json, report.sr.dcm or candidates.json of a done job")
    def get_artifact(job_id: str, artifact: str) -> FileResponse:
        return _file(job_id, artifact)

    @app.delete(API + "/{job_id}", responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
                summary="delete a job (queued, done or failed) and all its files")
    def delete_study(job_id: str) -> dict[str, Any]:
        _job(job_id)
        try:
            was = store.delete(job_id)
        except KeyError:
            raise HTTPException(404, f"no job {job_id!r}") from None
        except RuntimeError as exc:
            raise HTTPException(409, f"job {job_id}: {exc}") from None
        return {"job_id": job_id, "deleted": True, "status_was": was}

    return app


def cli_serve(args: Any) -> int:
    """``radscribe serve``: run the app with uvicorn until interrupted."""
    import uvicorn

    work = Path(args.work_dir)
    limits = Limits(max_upload_bytes=int(args.max_upload_mb) * MIB)
    app = create_app(work, keep_uploads=args.keep_uploads, limits=limits)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host} without authentication or TLS; anyone who can reach this port can "
              "upload studies and read results", file=sys.stderr)
    print(f"radscribe {__version__}: http://{args.host}:{args.port}/ (API docs at /docs), jobs in "
          f"{work.resolve() / 'jobs'}", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
