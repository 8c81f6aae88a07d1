"""Send every new study of an Orthanc PACS to radscribe: poll Orthanc's ``/changes`` for ``StableStudy`` events
(Orthanc raises one when a study has received no new instance for its ``StableAge`` seconds) and submit each
study as a PACS job (``POST /v1/pacs/studies``) to a running ``radscribe serve --pacs-url``.

The watcher is a client of the public API, not part of the server: it authenticates with a token like any
client (``RADSCRIBE_TOKEN``), and the server's idempotent submission makes a study seen twice (e.g. the
``StableStudy`` that follows radscribe's own SR being stored back) the same job, never a second analysis.
The last change handled is kept in a small state file (written atomically), so a restarted watcher continues
where it stopped; a change is only passed once the server has accepted the job, so a full queue (503) or a
server that is down loses nothing: the watcher waits and tries again from the same change.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radscribe.errors import RadscribeInputError

STABLE = "StableStudy"


class RetryLater(Exception):
    """The server cannot take the job now (queue full, unreachable): keep the change and retry it."""


class StudyRefused(Exception):
    """The server refused this study for good (e.g. no image series): record it and go on."""


@dataclass
class WatchResult:
    submitted: list[tuple[str, str]] = field(default_factory=list)  # (StudyInstanceUID, job id)
    refused: list[tuple[str, str]] = field(default_factory=list)    # (StudyInstanceUID, the server's error)
    last_seq: int = 0
    retry: bool = False


class OrthancWatcher:
    """Polls ``orthanc_url`` (Orthanc's REST root, e.g. ``http://127.0.0.1:8042``) and calls
    ``submit(study_uid) -> job_id`` for each stable study; ``state_path`` keeps the last change handled."""

    def __init__(self, orthanc_url: str, submit: Callable[[str], str], state_path: Path, *, batch: int = 100,
                 http: Any = None):
        import httpx

        self.url = orthanc_url.rstrip("/")
        self.submit = submit
        self.state_path = Path(state_path)
        self.batch = int(batch)
        self.http = http or httpx.Client(timeout=30)

    def last_seq(self) -> int:
        try:
            return int(json.loads(self.state_path.read_text())["last_seq"])
        except FileNotFoundError:
            return 0
        except (ValueError, KeyError, TypeError):
            raise RadscribeInputError(f"watch state file {self.state_path} is not radscribe's; remove it to start "
                                      "from the PACS's first change") from None

    def _save(self, seq: int) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        tmp.write_text(json.dumps({"last_seq": seq, "orthanc": self.url}))
        os.replace(tmp, self.state_path)

    def _get(self, path: str, **params: Any) -> Any:
        import httpx

        try:
            r = self.http.get(self.url + path, params=params or None)
            r.raise_for_status()
            return r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise RetryLater(f"Orthanc {path}: {type(exc).__name__}") from None

    def poll_once(self) -> WatchResult:
        """Handle every change since the last one handled (all pages); stop early when the server says retry."""
        res = WatchResult(last_seq=self.last_seq())
        while True:
            try:
                doc = self._get("/changes", since=res.last_seq, limit=self.batch)
            except RetryLater:
                res.retry = True
                return res
            for ch in doc.get("Changes", []):
                if ch.get("ChangeType") == STABLE:
                    try:
                        uid = self._get(f"/studies/{ch['ID']}")["MainDicomTags"]["StudyInstanceUID"]
                        res.submitted.append((uid, self.submit(uid)))
                    except RetryLater:
                        res.retry = True
                        return res
                    except StudyRefused as exc:
                        res.refused.append((ch.get("ID", "?"), str(exc)))
                res.last_seq = int(ch["Seq"])
                self._save(res.last_seq)
            if doc.get("Done", True) or not doc.get("Changes"):
                res.last_seq = max(res.last_seq, int(doc.get("Last", res.last_seq)))
                self._save(res.last_seq)
                return res


def api_submitter(server_url: str, token: str | None, *, writer: str = "structured", models: str = "auto",
                  http: Any = None) -> Callable[[str], str]:
    """``submit(study_uid) -> job_id`` over radscribe's HTTP API."""
    import httpx

    client = http or httpx.Client(timeout=60)
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    def submit(study_uid: str) -> str:
        try:
            r = client.post(server_url.rstrip("/") + "/v1/pacs/studies", headers=headers,
                            json={"study_uid": study_uid, "writer": writer, "models": models})
        except httpx.HTTPError as exc:
            raise RetryLater(f"radscribe server: {type(exc).__name__}") from None
        if r.status_code in (429, 503) or r.status_code >= 500:
            raise RetryLater(f"radscribe server answered {r.status_code}")
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        if r.status_code in (401, 403):
            raise RadscribeInputError(f"the radscribe server refused the token ({r.status_code}); set RADSCRIBE_TOKEN")
        if r.status_code >= 400:
            raise StudyRefused(str(body.get("error") or f"HTTP {r.status_code}"))
        return str(body["job_id"])

    return submit


def cli_watch_orthanc(args: Any) -> int:
    """``radscribe watch-orthanc``: submit every stable Orthanc study to a radscribe server, until interrupted."""
    token = os.environ.get("RADSCRIBE_TOKEN")
    submit = api_submitter(args.server, token, writer=args.writer, models=args.models)
    watcher = OrthancWatcher(args.orthanc, submit, Path(args.state))
    print(f"watching {watcher.url}/changes from change {watcher.last_seq()}; jobs go to {args.server}", flush=True)
    while True:
        res = watcher.poll_once()  # a refused token or a foreign state file: error + exit 2 from the CLI
        for uid, job in res.submitted:
            print(f"study {uid} -> job {job}", flush=True)
        for ident, err in res.refused:
            print(f"study {ident} refused: {err}", flush=True)
        if args.once:
            return 0 if not res.retry else 1
        time.sleep(max(1.0, float(args.interval)))
