"""The ``downloader`` runner: fetch one file, verify its sha256, and only then put it in place.

Params: ``url`` (http, https, or file:// for local mirrors), ``sha256`` (64 hex digits), ``dest`` (absolute
path), ``mode`` (optional, octal such as "0755"; default "0644").

``dest`` only ever holds a complete, verified file: the download streams into a hidden temporary file in
the same directory (so the final rename is atomic), which is fsynced, checked, given its mode and renamed
over ``dest``; on any failure, timeout or cancellation the temporary file is removed and ``dest`` is left as
it was. A ``dest`` that already has the right digest is success without a download, which makes the item
cheap to re-run.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import stat
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import aiohttp

from agent.adapters.atomic import fsync_dir
from agent.adapters.runners.redaction import Redactor
from agent.adapters.runners.settings import RunnerSettings
from agent.api.execution import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_TIMEOUT,
    EventSink,
    ItemInput,
    ItemResult,
)
from agent.kits.digests import is_sha256

_CHUNK = 1 << 16
_TIMEOUTS = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
"""No overall limit (that is the item's ``timeout``), but a stalled connection fails within a minute."""


class ParamsError(ValueError):
    """The params do not describe a download."""


class DownloadError(Exception):
    """The download failed; the message says why, and ``dest`` is untouched."""


@dataclass(frozen=True)
class Download:
    url: str
    sha256: str
    dest: Path
    mode: int

    @property
    def display_url(self) -> str:
        """The URL without a password, for messages."""
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        host = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=host))


def parse(params: Mapping[str, str]) -> Download:
    url, sha, dest = params.get("url", ""), params.get("sha256", "").lower(), params.get("dest", "")
    if urlsplit(url).scheme not in ("http", "https", "file"):
        raise ParamsError(f"param url must be an http, https or file URL, got {url!r}")
    if not is_sha256(sha):
        raise ParamsError("param sha256 must be 64 hexadecimal digits")
    if not dest.startswith("/") or dest.endswith("/"):
        raise ParamsError(f"param dest must be an absolute file path, got {dest!r}")
    mode_text = params.get("mode", "0644")
    if not re.fullmatch(r"0?[0-7]{3,4}", mode_text):
        raise ParamsError(f"param mode must be octal like 0644, got {mode_text!r}")
    return Download(url, sha, Path(os.path.normpath(dest)), int(mode_text, 8))


def digest_of(path: Path) -> str | None:
    """sha256 of ``path`` if it is a regular file (not a symlink), else None."""
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return None
        with path.open("rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except FileNotFoundError:
        return None


async def _chunks(url: str) -> AsyncIterator[bytes]:
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise DownloadError(f"file URL with a remote host {parts.netloc!r} is not supported")
        with open(unquote(parts.path), "rb") as f:  # noqa: ASYNC230 (reads below run in a thread)
            while chunk := await asyncio.to_thread(f.read, _CHUNK * 16):
                yield chunk
        return
    async with (
        aiohttp.ClientSession(timeout=_TIMEOUTS) as session,
        session.get(url) as response,
    ):
        if response.status != 200:
            raise DownloadError(f"HTTP {response.status} {response.reason}")
        async for chunk in response.content.iter_chunked(_CHUNK):
            yield chunk


async def fetch(download: Download) -> int:
    """Download, verify and install ``download``; the number of bytes. Raises DownloadError."""
    directory = download.dest.parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{download.dest.name}.", suffix=".part", dir=directory)
    tmp: str | None = tmp_name
    try:
        with os.fdopen(fd, "wb") as out:
            digest, size = hashlib.sha256(), 0
            async for chunk in _chunks(download.url):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
            if digest.hexdigest() != download.sha256:
                raise DownloadError(
                    f"sha256 mismatch: expected {download.sha256}, got {digest.hexdigest()}"
                )
            out.flush()
            os.fchmod(out.fileno(), download.mode)
            await asyncio.to_thread(os.fsync, out.fileno())
        os.replace(tmp_name, download.dest)
        tmp = None
        await asyncio.to_thread(fsync_dir, directory)
        return size
    except (aiohttp.ClientError, OSError) as exc:
        raise DownloadError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        if tmp is not None:
            os.unlink(tmp)


async def run(item: ItemInput, on_event: EventSink, settings: RunnerSettings) -> ItemResult:
    redactor = Redactor(item.secrets.values())
    try:
        download = parse(item.params)
    except ParamsError as exc:
        return ItemResult(EXIT_INVALID, "failed", redactor.text(str(exc)), "")
    where = f"{download.display_url} -> {download.dest}"
    if await asyncio.to_thread(digest_of, download.dest) == download.sha256:
        os.chmod(download.dest, download.mode)
        return ItemResult(0, "success", f"{download.dest} already present with the right sha256", "")
    try:
        async with asyncio.timeout(item.timeout):
            size = await fetch(download)
    except DownloadError as exc:
        message = f"download {where} failed: {exc}; {download.dest} left untouched"
        return ItemResult(EXIT_FAILED, "failed", redactor.text(message), "")
    except TimeoutError:
        return ItemResult(EXIT_TIMEOUT, "timeout", redactor.text(f"download {where} timed out"), "")
    except asyncio.CancelledError:
        return ItemResult(EXIT_CANCELLED, "cancelled", redactor.text(f"download {where} cancelled"), "")
    return ItemResult(0, "success", redactor.text(f"downloaded {where} ({size} bytes, sha256 verified)"), "")
