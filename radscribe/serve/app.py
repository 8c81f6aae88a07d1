"""HTTP API and web page for radscribe: upload a study, poll the job, fetch findings / report / FHIR / SR.

``create_app(work_dir)`` builds the FastAPI app; ``radscribe serve`` runs it with uvicorn. Uploads are
streamed into a job folder, recorded in the job table (:mod:`radscribe.serve.jobs`) and analysed by
worker processes that each keep one analysis session loaded (:mod:`radscribe.serve.worker`). Every
``/v1`` route needs a bearer token once tokens exist in the work folder (:mod:`radscribe.serve.auth`);
Host and Origin are checked on every request. Every error answer is JSON ``{"error": "<one line>"}``
and names neither an uploaded file nor a server folder.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
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
from radscribe.errors import RadscribeInputError
from radscribe.serve.auth import LOOPBACK, GuardConfig, RequestGuard, TokenStore, host_names
from radscribe.serve.jobs import ARTIFACTS, JOB_ID, Job, JobStore, default_db_url
from radscribe.serve.upload import MIB, Limits, UploadRejected, receive_multipart

API = "/v1/studies"
WRITER = re.compile(r"^[a-z0-9-]{1,40}$")


# ---- response models (they make /openapi.json describe the API) ---------------------
class ErrorBody(BaseModel):
    error: str = Field(description="one line saying what is wrong and what to do")


class JobCreated(BaseModel):
    job_id: str
    status: str = Field(description="queued (or the status of the earlier job when duplicate)")
    duplicate: bool = Field(False, description="true: the same study with the same options was sent before; "
                                               "this is that job")
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
    input: dict[str, Any] = Field(description="files (count), bytes (their total size, unpacked), zip (sent as a "
                                             "zip); uploaded names are not kept")
    options: dict[str, str]
    links: dict[str, Any] = Field(description="relative URLs of this job's files (when done)")
    analysis: dict[str, Any] | None = Field(
        None, description="when done: the content of findings.json (radscribe/findings/findings.schema.json)")
    pacs: dict[str, Any] | None = Field(None, description="PACS jobs: the study, the series pulled, what was stored")


class PacsRequest(BaseModel):
    study_uid: str = Field(pattern=r"^[0-9]+(\.[0-9]+)*$", max_length=64, description="StudyInstanceUID in the PACS")
    series_uid: str | None = Field(None, pattern=r"^[0-9]+(\.[0-9]+)*$", max_length=64,
                                   description="the series to analyse (default: the one with most instances)")
    writer: str = "structured"
    models: str = "auto"
    store_back: bool = Field(True, description="STOW-RS the DICOM SR (and SEG) into the same study")


class Health(BaseModel):
    status: str
    version: str
    detectors: list[dict[str, Any]]
    queue_length: int = Field(description="jobs waiting for a worker")
    running: int
    limits: dict[str, int]
    auth: str = Field(description="'token' (every /v1 route needs a bearer token) or 'open' (loopback only)")


_ABS_PATH = re.compile(r"(?<![\w.:/])/(?!v1/)(?:[\w.+@-]+/)+[\w.+@-]*")


def scrub(message: str, work_dir: Path | None = None) -> str:
    """One line without server paths: the work folder, then any other absolute path, are replaced."""
    if work_dir is not None:
        message = message.replace(str(work_dir), "the work folder")
    return " ".join(_ABS_PATH.sub("<path>", message).split())


def _err(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": scrub(message)}, status_code=status, headers=headers)


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
    from radscribe.report.generate import GENERATORS  # the one list of writer names

    if not WRITER.match(writer) or writer not in GENERATORS:
        raise UploadRejected(f"unknown report writer {writer[:60]!r}; use one of {', '.join(GENERATORS)}")
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
               store: JobStore | None = None, db_url: str | None = None, workers: int = 0,
               tokens: TokenStore | None = None, guard: GuardConfig | None = None, keep_days: float | None = None,
               lease_s: float = 30.0, pacs_url: str | None = None, log_path: Path | None = None) -> FastAPI:
    """The radscribe web app; jobs live under ``work_dir/jobs`` and in the job table at ``db_url``
    (default: SQLite ``work_dir/jobs.db``). ``workers`` worker processes are started with the app (0: none,
    the caller runs :class:`~radscribe.serve.worker.Worker` itself, as tests do)."""
    from radscribe.serve.worker import Supervisor

    work_dir = Path(work_dir).resolve()
    limits = limits or Limits()
    db_url = db_url or default_db_url(work_dir)
    store = store or JobStore(work_dir, db_url, keep_uploads=keep_uploads)
    tokens = tokens if tokens is not None else TokenStore(work_dir)
    detector_names = [d["name"] for d in available_detectors()]
    started = time.time()
    supervisor = Supervisor(store, db_url, workers, lease_s=lease_s, keep_days=keep_days, log_path=log_path) \
        if workers > 0 else None

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        store.recover(started_before=started)
        if keep_days is not None:
            store.expire(keep_days)
        if supervisor is not None:
            supervisor.start()
        yield
        if supervisor is not None:
            supervisor.stop()

    # docs_url / redoc_url off: FastAPI's pages load Swagger UI / ReDoc from a CDN, and nothing this server shows
    # may depend on a third-party host (offline hospital networks, CSP). The schema stays at /openapi.json.
    app = FastAPI(title="radscribe", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Upload a study (DICOM series, NIfTI, MetaImage, NRRD, PNG/JPEG), poll the job, "
                              "fetch findings.json, report.md, FHIR DiagnosticReport and DICOM SR. Research "
                              "software, not a medical device: every finding must be reviewed by a radiologist.")
    app.state.store = store
    app.state.limits = limits
    app.state.supervisor = supervisor
    guard = guard or GuardConfig()
    if guard.origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(guard.origins), allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization"])
    app.add_middleware(RequestGuard, tokens=tokens, config=guard)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return _err(exc.status_code, scrub(str(exc.detail), work_dir), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return _err(422, f"invalid request: {where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(UploadRejected)
    async def _rejected(_: Request, exc: UploadRejected) -> JSONResponse:
        return _err(exc.status, scrub(str(exc), work_dir))

    def _owner(request: Request) -> tuple[str, int]:
        """(token id or "", its disk quota in bytes)."""
        entry = request.scope.get("state", {}).get("token")
        if entry is None:
            return "", limits.quota_bytes
        return entry.token_id, entry.quota_bytes or limits.quota_bytes

    def _job(job_id: str, request: Request) -> Job:
        job = store.get(job_id) if JOB_ID.match(job_id) else None
        if job is None or job.status == "receiving" or job.owner != _owner(request)[0]:
            raise HTTPException(404, f"no job {job_id[:64]!r}; it never existed, was deleted or is not yours")
        return job

    def _links(job: Job) -> dict[str, Any]:
        base = f"{API}/{job.job_id}"
        links: dict[str, Any] = {"self": base}
        if job.status == "done":
            for name in ARTIFACTS:
                if store.artifact(job, name):
                    links[name] = f"{base}/{name}"
            links["overlays"] = [f"{base}/overlays/{n}" for n in store.overlays(job)]
        return links

    def _status(job: Job) -> dict[str, Any]:
        analysis = None
        if job.status == "done":
            path = store.artifact(job, "findings.json")
            analysis = None if path is None else json.loads(path.read_text())
        return {
            "job_id": job.job_id, "status": job.status, "created": _iso(job.created), "started": _iso(job.started),
            "finished": _iso(job.finished), "elapsed_s": job.elapsed_s, "jobs_ahead": store.ahead(job),
            "error": job.error, "error_kind": job.error_kind,
            "input": {"files": job.input_files, "bytes": job.input_bytes, "zip": bool(job.zip)},
            "options": {"writer": job.writer, "models": job.models},
            "links": _links(job), "analysis": analysis,
            **({"pacs": _pacs_info(job)} if job.kind == "pacs" else {}),
        }

    def _pacs_info(job: Job) -> dict[str, Any]:
        info: dict[str, Any] = {"study_uid": (job.params or {}).get("study_uid")}
        path = store.artifact(job, "pacs.json") if job.status == "done" else None
        if path is not None:
            info.update(json.loads(path.read_text()))
        return info

    csp = {"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                      "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'",
           "X-Content-Type-Options": "nosniff"}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        html = resources.files("radscribe.serve").joinpath("static/index.html").read_text(encoding="utf-8")
        return HTMLResponse(html, headers=csp)

    @app.get("/static/viewer.js", include_in_schema=False)
    def viewer_js() -> Any:
        from fastapi.responses import Response

        js = resources.files("radscribe.serve").joinpath("static/viewer.js").read_text(encoding="utf-8")
        return Response(js, media_type="text/javascript; charset=utf-8", headers=csp)

    @app.get("/health", response_model=Health, summary="version, detectors, queue length, limits")
    def health() -> dict[str, Any]:
        c = store.counts()
        return {"status": "ok", "version": __version__, "detectors": available_detectors(), "queue_length": c["queued"],
                "running": c["running"], "limits": limits.to_dict(), "auth": "token" if len(tokens) else "open"}

    @app.post(API, status_code=202, response_model=JobCreated, openapi_extra=_UPLOAD_BODY,
              summary="upload a study; returns a job id at once",
              responses={400: {"model": ErrorBody}, 413: {"model": ErrorBody}, 415: {"model": ErrorBody},
                         503: {"model": ErrorBody}})
    async def post_study(request: Request) -> Any:
        """Multipart upload of one file, the files of one DICOM series, or one .zip. Optional form fields
        ``writer`` (default structured) and ``models`` (default auto). The analysis runs in the background:
        poll ``GET /v1/studies/{job_id}``."""
        owner, quota = _owner(request)
        room = quota - store.held_bytes(owner)
        if room <= 0:
            return _err(413, f"the jobs of this token hold its disk quota of {quota // MIB} MiB; delete finished "
                             "jobs (DELETE /v1/studies/{job_id}) and send again")
        if shutil.disk_usage(work_dir).free < limits.min_free_bytes:
            return _err(507, "the server's disk is nearly full; try again later", {"Retry-After": "300"})
        declared = request.headers.get("content-length", "")
        held = min(room, int(declared)) if declared.isdigit() else min(room, limits.max_upload_bytes)
        job_id = store.reserve(owner=owner, max_queued=limits.max_queued, reserve_bytes=held)
        if job_id is None:
            return _err(503, f"{limits.max_queued} jobs are already waiting; try again in a minute",
                        {"Retry-After": "30"})
        try:
            up = await receive_multipart(request.headers.get("content-type", ""),
                                         request.headers.get("content-length"), request.stream(),
                                         store.input_dir(job_id), limits.cap_bytes(room))
            writer, models = _check_options(up.fields, detector_names)
        except BaseException:
            store.discard(job_id)
            raise
        job, dup = store.submit(job_id, dedup_key=up.content_key(owner, writer, models), writer=writer,
                                models=models, n_files=len(up.files), n_bytes=sum(p.stat().st_size for p in up.files),
                                was_zip=up.was_zip)
        return JSONResponse({"job_id": job.job_id, "status": job.status, "duplicate": dup, "links": _links(job)},
                            status_code=200 if dup else 202, headers={"Location": f"{API}/{job.job_id}"})

    @app.post("/v1/pacs/studies", status_code=202, response_model=JobCreated,
              responses={400: {"model": ErrorBody}, 503: {"model": ErrorBody}},
              summary="analyse a study held by the PACS and store the DICOM SR back into it")
    def post_pacs_study(body: PacsRequest, request: Request) -> Any:
        """Pull the study by StudyInstanceUID over DICOMweb (QIDO-RS, WADO-RS), analyse one series, STOW-RS the
        SR back. Needs ``radscribe serve --pacs-url``. The same study with the same options returns the same job."""
        if not pacs_url:
            return _err(400, "this server has no PACS configured; start it with radscribe serve --pacs-url URL")
        writer, models = _check_options({"writer": body.writer, "models": body.models}, detector_names)
        owner, _ = _owner(request)
        params = {"study_uid": body.study_uid, "series_uid": body.series_uid, "store_back": body.store_back,
                  "pacs_url": pacs_url}
        job_id = store.reserve(owner=owner, max_queued=limits.max_queued, kind="pacs", params=params)
        if job_id is None:
            return _err(503, f"{limits.max_queued} jobs are already waiting; try again in a minute",
                        {"Retry-After": "30"})
        import hashlib

        key = hashlib.sha256("\0".join([owner, "pacs", body.study_uid, body.series_uid or "", writer, models,
                                        str(body.store_back)]).encode()).hexdigest()
        job, dup = store.submit(job_id, dedup_key=key, writer=writer, models=models, n_files=0, n_bytes=0)
        return JSONResponse({"job_id": job.job_id, "status": job.status, "duplicate": dup, "links": _links(job)},
                            status_code=200 if dup else 202, headers={"Location": f"{API}/{job.job_id}"})

    @app.get(API, summary="the jobs of this token, newest first (id, status, created)")
    def list_studies(request: Request, limit: int = 50) -> dict[str, Any]:
        mine = [j for j in store.all() if j.owner == _owner(request)[0] and j.status != "receiving"]
        mine = sorted(mine, key=lambda j: j.created, reverse=True)[:max(1, min(limit, 500))]
        return {"jobs": [{"job_id": j.job_id, "status": j.status, "created": _iso(j.created)} for j in mine]}

    @app.get(API + "/{job_id}", response_model=JobStatus, responses={404: {"model": ErrorBody}},
             summary="job status; when done, the findings.json content under 'analysis'")
    def get_study(job_id: str, request: Request) -> dict[str, Any]:
        return _status(_job(job_id, request))

    def _file(job_id: str, rel: str, request: Request) -> FileResponse:
        job = _job(job_id, request)
        if job.status in ("queued", "running"):
            raise HTTPException(409, f"job {job_id} is {job.status}; poll {API}/{job_id} until its status is done")
        if job.status == "failed":
            raise HTTPException(404, f"job {job_id} failed ({job.error}); it has no {rel}")
        path = store.artifact(job, rel)
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
    def get_overlay(job_id: str, name: str, request: Request) -> FileResponse:
        return _file(job_id, f"overlays/{name}", request)

    @app.get(API + "/{job_id}/{artifact}", responses=file_responses,
             summary="report.md, findings.json, report.fhir.json, report.sr.dcm or candidates.json of a done job")
    def get_artifact(job_id: str, artifact: str, request: Request) -> FileResponse:
        return _file(job_id, artifact, request)

    @app.delete(API + "/{job_id}", responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
                summary="delete a job (queued, done or failed) and all its files")
    def delete_study(job_id: str, request: Request) -> dict[str, Any]:
        _job(job_id, request)
        try:
            was = store.delete(job_id)
        except KeyError:
            raise HTTPException(404, f"no job {job_id!r}") from None
        except RuntimeError as exc:
            raise HTTPException(409, f"job {job_id}: {exc}") from None
        return {"job_id": job_id, "deleted": True, "status_was": was}

    return app


def cli_serve(args: Any) -> int:
    """``radscribe serve``: run the app and its workers with uvicorn until interrupted."""
    import logging

    import uvicorn

    work = Path(args.work_dir).resolve()
    tokens = TokenStore(work)
    if args.host not in LOOPBACK and not len(tokens):
        raise RadscribeInputError(f"refusing to serve on {args.host} without tokens: anyone who can reach the port "
                                  f"could upload studies and read results; create one with `radscribe token create "
                                  f"--name NAME --work-dir {args.work_dir}` (or bind to 127.0.0.1)")
    if args.workers < 0 or args.workers > 32:
        raise RadscribeInputError("--workers must be between 0 and 32")
    limits = Limits.for_machine(work, max_upload_mb=args.max_upload_mb, max_queued=args.max_queued)
    guard = GuardConfig(hosts=host_names(args.host, tuple(args.allowed_host or ())),
                        origins=tuple(args.cors_origin or ()))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(work, keep_uploads=args.keep_uploads, limits=limits, db_url=args.db, workers=args.workers,
                     tokens=tokens, guard=guard, keep_days=args.keep_days, pacs_url=args.pacs_url)
    auth = f"{len(tokens)} token(s)" if len(tokens) else "no tokens (open on loopback only)"
    print(f"radscribe {__version__}: http://{args.host}:{args.port}/ (API schema at /openapi.json), {args.workers} worker(s), "
          f"{auth}, jobs in {work / 'jobs'}", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
