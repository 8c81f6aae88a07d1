"""Receive an upload straight into a job folder: streaming multipart parsing, safe names, safe zips.

Nothing is spooled to the system temp folder: file parts are written as they arrive into the job's
``input/`` folder, and the limits (bytes, files, unpacked zip size) are enforced while streaming, so
an oversized upload is refused before it fills the disk. Every rejection is an :class:`UploadRejected`
(a :class:`~radscribe.errors.RadscribeInputError`) carrying the HTTP status and one line a person can act on.
"""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
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

    def to_dict(self) -> dict[str, int]:
        return {"max_upload_mib": self.max_upload_bytes // MIB, "max_files": self.max_files,
                "max_unpacked_mib": self.max_unpacked_bytes // MIB, "max_queued_jobs": self.max_queued}


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
    unpacked_zip: str | None = None


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
        path = _unique(self.folder, safe_name(filename))
        self.upload.files.append(path)
        self._fh = open(path, "xb")  # noqa: SIM115 - closed in on_part_end

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._fh is not None:
            self._fh.write(data[start:end])
        else:
            self._value += data[start:end]
            if len(self._value) > self.limits.max_field_bytes:
                raise UploadRejected(f"form field {self._field!r} is longer than {self.limits.max_field_bytes} "
                                     "bytes; only files may be large")

    def on_part_end(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
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
        names = ", ".join(p.name for p in upload.files[:3])
        raise UploadRejected(f"the uploaded file(s) are empty (0 bytes): {names}; re-export or re-copy them")
    zips = [p for p in upload.files if _is_zip(p)]
    if zips:
        if len(upload.files) > 1:
            raise UploadRejected("send a .zip alone, not together with other files (got "
                                 f"{len(upload.files)} files including {zips[0].name})")
        upload.unpacked_zip = zips[0].name
        from starlette.concurrency import run_in_threadpool

        upload.files = await run_in_threadpool(unpack_zip, zips[0], folder, limits)  # keep the event loop free
        zips[0].unlink()
    return upload


def _is_zip(path: Path) -> bool:
    with open(path, "rb") as fh:
        magic = fh.read(4)
    return magic in (b"PK\x03\x04", b"PK\x05\x06") or path.suffix.lower() == ".zip"


def _entry_parts(name: str) -> list[str]:
    """Path components of a zip entry; UploadRejected when it could point outside the folder."""
    norm = name.replace("\\", "/")
    parts = [p for p in PurePosixPath(norm).parts if p not in ("", ".")]
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm) or ".." in parts or "\x00" in norm:
        raise UploadRejected(f"zip entry {name!r} points outside the upload folder (absolute path or '..'); "
                             "re-create the zip with relative paths")
    return parts


def unpack_zip(archive: Path, folder: Path, limits: Limits) -> list[Path]:
    """Unpack ``archive`` into ``folder`` with every entry checked first; returns the files written.

    Refused (nothing written): entries with absolute or ``..`` paths, symbolic links, encrypted entries,
    more than ``limits.max_files`` entries, or a declared unpacked size over ``limits.max_unpacked_bytes``.
    The bytes actually written are counted too, so a zip that lies about its sizes is stopped as well.
    """
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UploadRejected(f"{archive.name} is not a readable zip archive ({exc}); re-create it") from None
    written: list[Path] = []
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if len(infos) > limits.max_files:
            raise UploadRejected(f"{archive.name} holds {len(infos)} files; the limit is {limits.max_files}", 413)
        for info in infos:
            _entry_parts(info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise UploadRejected(f"zip entry {info.filename!r} is a symbolic link; zip the files themselves")
            if info.flag_bits & 0x1:
                raise UploadRejected(f"zip entry {info.filename!r} is encrypted; send an unencrypted zip")
        declared = sum(i.file_size for i in infos)
        bomb = UploadRejected(f"{archive.name} unpacks to more than {limits.max_unpacked_bytes // MIB} MiB, the "
                              "limit of this server; send fewer or smaller files", 413)
        if declared > limits.max_unpacked_bytes:
            raise bomb
        if not infos:
            raise UploadRejected(f"{archive.name} holds no files")
        root = folder.resolve()
        total = 0
        try:
            for info in infos:
                parts = [safe_name(p) for p in _entry_parts(info.filename)]
                target_dir = root.joinpath(*parts[:-1])
                if not target_dir.resolve().is_relative_to(root):  # belt and braces after _entry_parts
                    raise UploadRejected(f"zip entry {info.filename!r} points outside the upload folder")
                target_dir.mkdir(parents=True, exist_ok=True)
                target = _unique(target_dir, parts[-1])
                with zf.open(info) as src, open(target, "xb") as dst:
                    written.append(target)
                    n = 0
                    while chunk := src.read(1 << 20):
                        n += len(chunk)
                        total += len(chunk)
                        if n > info.file_size or total > limits.max_unpacked_bytes:
                            raise bomb
                        dst.write(chunk)
        except UploadRejected:
            for p in written:
                p.unlink(missing_ok=True)
            raise
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, EOFError) as exc:
            for p in written:
                p.unlink(missing_ok=True)
            raise UploadRejected(f"{archive.name} could not be unpacked ({type(exc).__name__}: {exc})") from None
    return written


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
