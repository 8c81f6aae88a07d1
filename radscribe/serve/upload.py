"""Receive an upload straight into a job folder: streaming multipart parsing, neutral names, safe zips.

Nothing is spooled to the system temp folder: file parts are written as they arrive into the job's
``input/`` folder, and the limits (bytes, files, unpacked zip size, zip compression ratio) are enforced
while streaming, so an oversized upload is refused before it fills the disk. Uploaded names (often a
patient's name or record number) are not kept: every file and zip folder gets a neutral name that keeps
only the suffix (``f0001.dcm``, ``d001/``), and a MetaImage header is pointed at its renamed data file.
Each file's SHA-256 is taken while it is written (idempotent submission). Every rejection is an
:class:`UploadRejected` (a :class:`~radscribe.errors.RadscribeInputError`) carrying the HTTP status and
one line a person can act on, which names no uploaded file.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from radscribe.errors import RadscribeInputError

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Upload limits. Sizes in bytes."""

    #: Whole request body (all files of one upload together, or the zip).
    max_upload_bytes: int = 1024 * MIB
    #: Files in one upload, or entries in one zip.
    max_files: int = 2000
    #: Total size of a zip's contents once unpacked (zip-bomb guard).
    max_unpacked_bytes: int = 2048 * MIB
    #: Jobs waiting for the worker; a new upload beyond this is refused with 503.
    max_queued: int = 16
    #: One non-file form field (``writer``, ``models``).
    max_field_bytes: int = 1024
    #: A zip entry larger than 64 MiB may not be more than this many times its compressed size.
    max_zip_ratio: int = 100
    #: Disk the jobs of one token may hold together (uploads waiting, outputs kept); a token's own
    #: ``quota_bytes`` replaces it.
    quota_bytes: int = 8192 * MIB
    #: Uploads are refused (507) while the work folder's disk has less than this free.
    min_free_bytes: int = 1024 * MIB

    def to_dict(self) -> dict[str, int]:
        return {"max_upload_mib": self.max_upload_bytes // MIB, "max_files": self.max_files,
                "max_unpacked_mib": self.max_unpacked_bytes // MIB, "max_queued_jobs": self.max_queued,
                "max_zip_ratio": self.max_zip_ratio, "quota_mib": self.quota_bytes // MIB}

    def cap_bytes(self, room: int) -> "Limits":
        """These limits with the upload and unpacked caps lowered to ``room`` bytes (what a token has left)."""
        room = max(0, room)
        return replace(self, max_upload_bytes=min(self.max_upload_bytes, room),
                       max_unpacked_bytes=min(self.max_unpacked_bytes, room))

    @classmethod
    def for_machine(cls, work_dir: Path, *, max_upload_mb: int | None = None, max_queued: int = 16) -> "Limits":
        """Caps sized to this machine: an unpacked study may use 1/32 of the memory (it is decoded in
        memory) and 1/20 of the free disk, at most 1 GiB; an upload at most 1/10 of the free disk."""
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(work_dir).free
        try:
            mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            mem = 8192 * MIB
        unpacked = max(16 * MIB, min(1024 * MIB, mem // 32, free // 20))
        upload = max(16 * MIB, min(1024 * MIB, free // 10))
        if max_upload_mb is not None:
            upload = int(max_upload_mb) * MIB
        return cls(max_upload_bytes=upload, max_unpacked_bytes=unpacked, max_queued=max_queued,
                   quota_bytes=max(64 * MIB, min(8192 * MIB, free // 4)), min_free_bytes=min(1024 * MIB, free // 10))


class UploadRejected(RadscribeInputError):
    """An upload refused before analysis; ``status`` is the HTTP status code to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class Upload:
    """What was received: the saved files (inside the input folder) and the plain form fields."""

    files: list[Path] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)
    n_bytes: int = 0
    was_zip: bool = False
    #: SHA-256 (hex) of each received file's content, as sent.
    digests: list[str] = field(default_factory=list)
    #: uploaded name (made safe) -> neutral name given; kept in memory only, to re-point MetaImage headers.
    renamed: dict[str, str] = field(default_factory=dict)

    def content_key(self, *extra: str) -> str:
        """SHA-256 over the sorted file digests and ``extra`` (options, owner): same study, same key."""
        h = hashlib.sha256()
        for d in sorted(self.digests):
            h.update(d.encode())
        for e in extra:
            h.update(b"\0" + e.encode())
        return h.hexdigest()


_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def safe_name(name: str) -> str:
    """A file name that cannot leave its folder: last path component, plain characters, no leading dot.

    (The study loader skips dot-files, so a leading dot would also hide the file from analysis.)
    """
    base = re.split(r"[\\/]", name.replace("\x00", ""))[-1].strip()
    base = _UNSAFE.sub("_", base).lstrip(".")
    if len(base) > 150:  # keep the suffix (.nii.gz, .dcm) readable
        base = base[:80] + "_" + base[-60:]
    return base or "upload"


def neutral_name(name: str, k: int) -> str:
    """``f0001`` plus the suffix of ``name`` (kept: it tells the reader the format)."""
    low = safe_name(name).lower()
    for compound in (".nii.gz", ".tar.gz"):
        if low.endswith(compound):
            return f"f{k:04d}{compound}"
    suffix = PurePosixPath(low).suffix
    return f"f{k:04d}{suffix}" if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else f"f{k:04d}"


_MHD_DATA = re.compile(r"^(\s*ElementDataFile\s*=\s*)(\S.*?)\s*$", re.MULTILINE)


def repoint_metaimage(files: list[Path], renamed: dict[str, str]) -> None:
    """Point each renamed ``.mhd`` header at the new name of the data file it names (same folder)."""
    for p in files:
        if p.suffix.lower() != ".mhd" or p.stat().st_size > 64 * 1024:
            continue
        text = p.read_text(encoding="latin-1")
        m = _MHD_DATA.search(text)
        if not m:
            continue
        new = renamed.get(safe_name(m.group(2)).lower())
        if new is not None:
            p.write_text(text[:m.start(2)] + new + text[m.end(2):], encoding="latin-1")


def _unique(folder: Path, name: str) -> Path:
    target = folder / name
    if not target.exists():
        return target
    stem, dot, suffix = name.partition(".")
    k = 1
    while (folder / f"{stem}-{k}{dot}{suffix}").exists():
        k += 1
    return folder / f"{stem}-{k}{dot}{suffix}"


def _header_options(value: bytes) -> tuple[str, dict[str, str]]:
    from python_multipart.multipart import parse_options_header

    kind, opts = parse_options_header(value)
    return kind.decode("latin-1").lower(), {k.decode("latin-1").lower(): v.decode("utf-8", "replace")
                                            for k, v in opts.items()}


class _MultipartSink:
    """python-multipart callbacks that write file parts into ``folder`` and keep small fields in memory."""

    def __init__(self, folder: Path, limits: Limits):
        self.folder = folder
        self.limits = limits
        self.upload = Upload()
        self._hname = b""
        self._hvalue = b""
        self._disposition = b""
        self._field: str | None = None
        self._value = bytearray()
        self._fh = None
        self._hash = None

    def on_part_begin(self) -> None:
        self._disposition, self._field, self._value, self._fh = b"", None, bytearray(), None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._hname += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]

    def on_header_end(self) -> None:
        if self._hname.strip().lower() == b"content-disposition":
            self._disposition = self._hvalue
        self._hname, self._hvalue = b"", b""

    def on_headers_finished(self) -> None:
        _, opts = _header_options(self._disposition)
        self._field = opts.get("name", "")
        filename = opts.get("filename")
        if filename is None:
            return
        if filename == "":  # a browser's empty file input
            self._fh = open(self.folder / ".discard", "wb")  # noqa: SIM115 - closed in on_part_end
            return
        if len(self.upload.files) >= self.limits.max_files:
            raise UploadRejected(f"the upload holds more than {self.limits.max_files} files; send a .zip of the "
                                 "series or split it", 413)
        path = _unique(self.folder, neutral_name(filename, len(self.upload.files) + 1))
        self.upload.renamed.setdefault(safe_name(filename).lower(), path.name)
        self.upload.files.append(path)
        self._fh = open(path, "xb")  # noqa: SIM115 - closed in on_part_end
        self._hash = hashlib.sha256()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._fh is not None:
            self._fh.write(data[start:end])
            if self._hash is not None:
                self._hash.update(data[start:end])
        else:
            self._value += data[start:end]
            if len(self._value) > self.limits.max_field_bytes:
                raise UploadRejected(f"form field {self._field!r} is longer than {self.limits.max_field_bytes} "
                                     "bytes; only files may be large")

    def on_part_end(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            if self._hash is not None:
                self.upload.digests.append(self._hash.hexdigest())
                self._hash = None
        elif self._field is not None:
            self.upload.fields[self._field] = self._value.decode("utf-8", "replace").strip()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
        (self.folder / ".discard").unlink(missing_ok=True)


async def receive_multipart(content_type: str, content_length: str | None, stream: AsyncIterator[bytes],
                            folder: Path, limits: Limits) -> Upload:
    """Stream a ``multipart/form-data`` body into ``folder``; then unpack a zip if one was sent alone."""
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser

    kind, opts = _header_options(content_type.encode("latin-1"))
    if kind != "multipart/form-data" or not opts.get("boundary"):
        raise UploadRejected("send the study as multipart/form-data (e.g. curl -F files=@image.png ...); "
                             f"got Content-Type {content_type or 'none'!r}", 415)
    too_big = UploadRejected(f"the upload is larger than {limits.max_upload_bytes // MIB} MiB, the limit of this "
                             "server (radscribe serve --max-upload-mb)", 413)
    if content_length and content_length.isdigit() and int(content_length) > limits.max_upload_bytes:
        raise too_big
    sink = _MultipartSink(folder, limits)
    callbacks = {k: getattr(sink, k) for k in ("on_part_begin", "on_part_data", "on_part_end", "on_header_field",
                                                "on_header_value", "on_header_end", "on_headers_finished")}
    parser = MultipartParser(opts["boundary"], callbacks)  # type: ignore[arg-type]
    try:
        async for chunk in stream:
            sink.upload.n_bytes += len(chunk)
            if sink.upload.n_bytes > limits.max_upload_bytes:
                raise too_big
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise UploadRejected(f"the multipart body could not be parsed ({exc}); send it with curl -F or a "
                             "browser form") from None
    finally:
        sink.close()
    upload = sink.upload
    if not upload.files:
        raise UploadRejected("the upload holds no file; send one image, the files of one DICOM series, or a .zip "
                             "of it as multipart/form-data (field 'files')")
    if sum(p.stat().st_size for p in upload.files) == 0:
        raise UploadRejected("the uploaded file(s) are empty (0 bytes); re-export or re-copy them")
    zips = [p for p in upload.files if _is_zip(p)]
    if zips:
        if len(upload.files) > 1:
            raise UploadRejected(f"send a .zip alone, not together with other files (got {len(upload.files)} "
                                 "files including a zip)")
        upload.was_zip = True
        from starlette.concurrency import run_in_threadpool

        upload.files, upload.digests, upload.renamed = await run_in_threadpool(
            unpack_zip, zips[0], folder, limits)  # keep the event loop free
        zips[0].unlink()
    repoint_metaimage(upload.files, upload.renamed)
    return upload


def _is_zip(path: Path) -> bool:
    with open(path, "rb") as fh:
        magic = fh.read(4)
    return magic in (b"PK\x03\x04", b"PK\x05\x06") or path.suffix.lower() == ".zip"


def _entry_parts(name: str, k: int) -> list[str]:
    """Path components of zip entry number ``k``; UploadRejected when it could point outside the folder."""
    norm = name.replace("\\", "/")
    parts = [p for p in PurePosixPath(norm).parts if p not in ("", ".")]
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm) or ".." in parts or "\x00" in norm or not parts:
        raise UploadRejected(f"zip entry {k} points outside the upload folder (absolute path or '..'); "
                             "re-create the zip with relative paths")
    return parts


def unpack_zip(archive: Path, folder: Path, limits: Limits) -> tuple[list[Path], list[str], dict[str, str]]:
    """Unpack ``archive`` into ``folder`` with every entry checked first, under neutral names.

    Returns the files written, their SHA-256 digests and the renaming (safe original -> neutral name).
    Refused (nothing written): entries with absolute or ``..`` paths, symbolic links, encrypted entries,
    more than ``limits.max_files`` entries, a declared unpacked size over ``limits.max_unpacked_bytes``,
    or an entry over 64 MiB compressed more than ``limits.max_zip_ratio`` times. The bytes actually
    written are counted too, so a zip that lies about its sizes is stopped as well.
    """
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UploadRejected(f"the zip is not a readable zip archive ({type(exc).__name__}); re-create it") from None
    written: list[Path] = []
    digests: list[str] = []
    renamed: dict[str, str] = {}
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if len(infos) > limits.max_files:
            raise UploadRejected(f"the zip holds {len(infos)} files; the limit is {limits.max_files}", 413)
        bomb = UploadRejected(f"the zip unpacks to more than {limits.max_unpacked_bytes // MIB} MiB, the "
                              "limit of this server for this token; send fewer or smaller files", 413)
        for k, info in enumerate(infos, 1):
            _entry_parts(info.filename, k)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise UploadRejected(f"zip entry {k} is a symbolic link; zip the files themselves")
            if info.flag_bits & 0x1:
                raise UploadRejected(f"zip entry {k} is encrypted; send an unencrypted zip")
            if info.file_size > 64 * MIB and info.file_size > limits.max_zip_ratio * max(1, info.compress_size):
                raise UploadRejected(f"zip entry {k} is compressed {info.file_size // max(1, info.compress_size)} "
                                     f"times (over {limits.max_zip_ratio}): refused as a zip bomb", 413)
        declared = sum(i.file_size for i in infos)
        if declared > limits.max_unpacked_bytes:
            raise bomb
        if not infos:
            raise UploadRejected("the zip holds no files")
        root = folder.resolve()
        dirs: dict[tuple[str, ...], Path] = {(): root}
        total = 0
        try:
            for k, info in enumerate(infos, 1):
                parts = [safe_name(p) for p in _entry_parts(info.filename, k)]
                key: tuple[str, ...] = ()
                for part in parts[:-1]:  # neutral folder names, the same for entries of one folder
                    parent = dirs[key]
                    key = key + (part.lower(),)
                    if key not in dirs:
                        dirs[key] = parent / f"d{len(dirs):03d}"
                target_dir = dirs[key]
                if not target_dir.resolve().is_relative_to(root):  # belt and braces after _entry_parts
                    raise UploadRejected(f"zip entry {k} points outside the upload folder")
                target_dir.mkdir(parents=True, exist_ok=True)
                target = _unique(target_dir, neutral_name(parts[-1], k))
                renamed.setdefault(parts[-1].lower(), target.name)
                h = hashlib.sha256()
                with zf.open(info) as src, open(target, "xb") as dst:
                    written.append(target)
                    n = 0
                    while chunk := src.read(1 << 20):
                        n += len(chunk)
                        total += len(chunk)
                        if n > info.file_size or total > limits.max_unpacked_bytes:
                            raise bomb
                        dst.write(chunk)
                        h.update(chunk)
                digests.append(h.hexdigest())
        except UploadRejected:
            for p in written:
                p.unlink(missing_ok=True)
            raise
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, EOFError) as exc:
            for p in written:
                p.unlink(missing_ok=True)
            raise UploadRejected(f"the zip could not be unpacked ({type(exc).__name__})") from None
    return written, digests, renamed


def study_path(folder: Path) -> Path:
    """What to hand to ``analyze``: the single file, a MetaImage header beside its data, or the folder."""
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".")]
    if len(files) == 1:
        return files[0]
    mhd = [p for p in files if p.suffix.lower() == ".mhd"]
    if len(mhd) == 1:
        return mhd[0]
    return folder


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
