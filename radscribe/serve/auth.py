"""Bearer tokens, per-token rate limits and the request guard (Host, Origin, token) of the HTTP API.

A token is ``rs_<id>_<secret>``: ``id`` (8 hex) names its entry in ``<work_dir>/tokens.json`` and the
secret (32 random bytes, url-safe base64) is never stored: the file keeps a random salt and
``sha256(salt + secret)`` only, so a copy of the file does not let anyone in. A secret with 256 bits
of entropy needs no slow hash. ``radscribe token create`` prints the token once.

:class:`RequestGuard` is a plain ASGI middleware (it does not buffer the upload stream): every request's
``Host`` must be one of the configured names (DNS-rebinding guard); a request with an ``Origin`` that is
neither its own origin nor an allowed CORS origin is refused (blind cross-site uploads); every ``/v1``
route needs ``Authorization: Bearer <token>`` when tokens are configured; each token (or, without
tokens, each client address) has a token-bucket rate limit. Answers are JSON ``{"error": ...}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from radscribe.errors import RadscribeInputError
from radscribe.io.output import atomic_file

TOKENS_FILE = "tokens.json"
TOKEN = re.compile(r"^rs_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class TokenEntry:
    """One stored token: no secret, only its salted hash. ``rate_per_min`` requests a minute (burst the
    same), ``quota_bytes`` of disk its jobs may hold together (0 = the server default)."""

    token_id: str
    name: str
    salt: str
    sha256: str
    created: float
    rate_per_min: int = 600
    quota_bytes: int = 0


class TokenStore:
    """The tokens of one work folder (``tokens.json``, mode 0600, rewritten atomically)."""

    def __init__(self, work_dir: Path):
        self.path = Path(work_dir) / TOKENS_FILE
        self._mtime = self._stamp()
        self._entries = self._load()

    def _stamp(self) -> float:
        return self.path.stat().st_mtime_ns if self.path.is_file() else 0

    def refresh(self) -> None:
        """Re-read the file when it changed (a token created or revoked while the server runs)."""
        stamp = self._stamp()
        if stamp != self._mtime:
            self._mtime, self._entries = stamp, self._load()

    def _load(self) -> dict[str, TokenEntry]:
        if not self.path.is_file():
            return {}
        try:
            raw = json.loads(self.path.read_text())
            return {d["token_id"]: TokenEntry(**d) for d in raw["tokens"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise RadscribeInputError(f"{TOKENS_FILE} in the work folder is unreadable ({type(exc).__name__}); "
                                      "restore it or delete it and create the tokens again") from None

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(self.path) as fh:
            json.dump({"tokens": [asdict(e) for e in self._entries.values()]}, fh, indent=1)
        os.chmod(self.path, 0o600)

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> list[TokenEntry]:
        return sorted(self._entries.values(), key=lambda e: e.created)

    def create(self, name: str, *, rate_per_min: int = 600, quota_bytes: int = 0) -> str:
        """Store a new token and return it (the only time it is ever shown)."""
        if not NAME.match(name):
            raise RadscribeInputError(f"token name {name[:70]!r} is not valid; use letters, digits, '.', '_' or '-' "
                                      "(up to 64)")
        if any(e.name == name for e in self._entries.values()):
            raise RadscribeInputError(f"a token named {name!r} exists already; revoke it first or pick another name")
        if rate_per_min < 1:
            raise RadscribeInputError("--rate-per-min must be at least 1")
        token_id = secrets.token_hex(4)
        while token_id in self._entries:
            token_id = secrets.token_hex(4)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_hex(16)
        self._entries[token_id] = TokenEntry(token_id, name, salt, _digest(salt, secret), time.time(),
                                             rate_per_min, quota_bytes)
        self._save()
        return f"rs_{token_id}_{secret}"

    def revoke(self, name: str) -> None:
        hits = [k for k, e in self._entries.items() if e.name == name]
        if not hits:
            raise RadscribeInputError(f"no token named {name!r}; `radscribe token list` shows them")
        for k in hits:
            del self._entries[k]
        self._save()

    def verify(self, token: str) -> TokenEntry | None:
        """The entry of a valid token, else None (constant-time comparison of the hash)."""
        self.refresh()
        m = TOKEN.match(token)
        entry = self._entries.get(m.group(1)) if m else None
        if entry is None or m is None:
            return None
        return entry if hmac.compare_digest(entry.sha256, _digest(entry.salt, m.group(2))) else None


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256((salt + secret).encode()).hexdigest()


class RateLimiter:
    """Token buckets keyed by token id (or client address): ``rate`` requests a minute, burst ``rate``."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, rate_per_min: int) -> float:
        """0 when the request may go ahead, else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            level, last = self._buckets.get(key, (float(rate_per_min), now))
            level = min(float(rate_per_min), level + (now - last) * rate_per_min / 60.0)
            if level >= 1.0:
                self._buckets[key] = (level - 1.0, now)
                return 0.0
            self._buckets[key] = (level, now)
            return (1.0 - level) * 60.0 / rate_per_min


@dataclass(frozen=True)
class GuardConfig:
    """What :class:`RequestGuard` accepts. ``hosts``: allowed Host names (without port); ``origins``:
    allowed cross-site origins (CORS, closed when empty); ``open_rate_per_min``: the per-address limit
    when no token is configured."""

    hosts: tuple[str, ...] = LOOPBACK + ("testserver",)
    origins: tuple[str, ...] = ()
    open_rate_per_min: int = 600


def host_names(bind: str, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Allowed Host names for a server bound to ``bind``: loopback names, the bind address, ``extra``."""
    names = list(LOOPBACK)
    if bind not in ("0.0.0.0", "::", ""):
        names.append(bind)
    return tuple(dict.fromkeys(names + [h.lower() for h in extra]))


def _host_only(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8000
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class RequestGuard:
    """ASGI middleware: Host check, Origin check, bearer token on /v1, rate limit."""

    def __init__(self, app: Any, *, tokens: TokenStore | None, config: GuardConfig):
        self.app = app
        self.tokens = tokens
        self.config = config
        self.limiter = RateLimiter()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refusal = self._check(scope, headers)
        if refusal is not None:
            status, message, extra = refusal
            await _send_json(send, status, {"error": message}, extra)
            return
        await self.app(scope, receive, send)

    def _check(self, scope: dict, headers: dict[str, str]) -> tuple[int, str, dict[str, str]] | None:
        host = _host_only(headers.get("host", ""))
        if host not in self.config.hosts:
            return 421, "this server does not answer for that Host name; use the address it was started with " \
                        "(radscribe serve --allowed-host adds names)", {}
        origin = headers.get("origin")
        if origin is not None and origin not in self.config.origins:
            own = {f"{scope.get('scheme', 'http')}://{headers.get('host', '')}"}
            if origin not in own:
                return 403, "cross-site requests are refused; allow the origin with radscribe serve " \
                            "--cors-origin", {}
        path = scope.get("path", "")
        if not (path == "/v1" or path.startswith("/v1/")):
            return None
        if self.tokens is not None:
            self.tokens.refresh()
        if self.tokens is not None and len(self.tokens):
            auth = headers.get("authorization", "")
            scheme, _, value = auth.partition(" ")
            entry = self.tokens.verify(value.strip()) if scheme.lower() == "bearer" else None
            if entry is None:
                why = "missing" if not auth else "not valid"
                return 401, f"the bearer token is {why}; send 'Authorization: Bearer <token>' (radscribe token " \
                            "create makes one)", {"WWW-Authenticate": "Bearer"}
            scope.setdefault("state", {})["token"] = entry
            key, rate = entry.token_id, entry.rate_per_min
        else:
            client = scope.get("client") or ("local", 0)
            key, rate = f"addr:{client[0]}", self.config.open_rate_per_min
        wait = self.limiter.take(key, rate)
        if wait > 0:
            return 429, f"rate limit of {rate} requests a minute reached; retry in {wait:.1f} s", \
                {"Retry-After": str(max(1, round(wait)))}
        return None


async def _send_json(send: Any, status: int, body: dict, headers: dict[str, str]) -> None:
    data = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


def cli_token(args: Any) -> int:
    """``radscribe token create|list|revoke --work-dir DIR``."""
    import sys

    store = TokenStore(args.work_dir)
    if args.action == "create":
        if not args.name:
            raise RadscribeInputError("token create needs --name NAME (who or what uses the token)")
        token = store.create(args.name, rate_per_min=args.rate_per_min, quota_bytes=int(args.quota_mb) * 1024 * 1024)
        print(token)
        print(f"token {args.name!r} created; it is shown only this once: keep it in a secret store. Send it as "
              "'Authorization: Bearer <token>'.", file=sys.stderr)
    elif args.action == "list":
        for e in store.entries():
            quota = f"{e.quota_bytes // (1024 * 1024)} MiB" if e.quota_bytes else "server default"
            print(f"{e.name}\tid {e.token_id}\t{e.rate_per_min}/min\tdisk {quota}\tcreated "
                  f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(e.created))} UTC")
    else:
        if not args.name:
            raise RadscribeInputError("token revoke needs --name NAME")
        store.revoke(args.name)
        print(f"token {args.name!r} revoked", file=sys.stderr)
    return 0
