"""The downloader: a real HTTP server on 127.0.0.1, real files, atomic placement."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from runner_harness import Runs

PAYLOAD = os.urandom(300_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@dataclass
class Mirror:
    server: TestServer
    requests: list[str] = field(default_factory=list)
    slow_started: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))


@pytest.fixture
async def mirror() -> AsyncIterator[Mirror]:
    app = web.Application()
    state = Mirror(TestServer(app, host="127.0.0.1"))

    async def payload(request: web.Request) -> web.Response:
        state.requests.append(request.path)
        return web.Response(body=PAYLOAD)

    async def slow(request: web.Request) -> web.StreamResponse:
        """Half the payload, then nothing for a long time: a download caught in the middle."""
        state.requests.append(request.path)
        response = web.StreamResponse()
        response.content_length = len(PAYLOAD)
        await response.prepare(request)
        await response.write(PAYLOAD[: len(PAYLOAD) // 2])
        state.slow_started.set()
        await asyncio.sleep(3600)
        return response

    app.router.add_get("/payload.bin", payload)
    app.router.add_get("/slow.bin", slow)
    await state.server.start_server()
    yield state
    await state.server.close()


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """An empty directory for downloads (the work dir lives beside it)."""
    path = tmp_path / "target"
    path.mkdir()
    return path


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def params(url: str, dest: Path, sha: str = SHA, **extra: str) -> dict[str, str]:
    return {"url": url, "sha256": sha, "dest": str(dest), **extra}


async def test_download_is_verified_and_placed_with_its_mode(
    runs: Runs, mirror: Mirror, target: Path
) -> None:
    dest = target / "opt" / "bin" / "tool"
    result = await runs.run(runs.item("downloader", params(mirror.url("/payload.bin"), dest, mode="0755")))
    assert (result.result, result.exit_code) == ("success", 0)
    assert "300000 bytes, sha256 verified" in result.message
    assert dest.read_bytes() == PAYLOAD
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755
    assert names(dest.parent) == ["tool"]  # no temporary file left behind


async def test_bad_checksum_names_both_digests_and_leaves_dest_untouched(
    runs: Runs, mirror: Mirror, target: Path
) -> None:
    dest = target / "tool"
    dest.write_bytes(b"the previous version")
    wrong = "0" * 64
    result = await runs.run(runs.item("downloader", params(mirror.url("/payload.bin"), dest, sha=wrong)))
    assert (result.result, result.exit_code) == ("failed", 1)
    assert f"expected {wrong}, got {SHA}" in result.message
    assert dest.read_bytes() == b"the previous version"
    assert names(target) == ["tool"]


async def test_file_already_present_is_not_downloaded_again(runs: Runs, mirror: Mirror, target: Path) -> None:
    dest = target / "tool"
    dest.write_bytes(PAYLOAD)
    result = await runs.run(runs.item("downloader", params(mirror.url("/payload.bin"), dest)))
    assert (result.result, result.exit_code) == ("success", 0)
    assert "already present" in result.message
    assert mirror.requests == []


async def test_partial_download_is_never_visible_at_dest(runs: Runs, mirror: Mirror, target: Path) -> None:
    dest = target / "tool"
    task = asyncio.create_task(runs.run(runs.item("downloader", params(mirror.url("/slow.bin"), dest))))
    await asyncio.wait_for(mirror.slow_started.wait(), 10)
    await asyncio.sleep(0.2)
    assert not dest.exists()
    [partial] = names(target)
    assert partial.startswith(".tool.")  # hidden, beside dest
    assert partial.endswith(".part")
    task.cancel()
    result = await task
    assert (result.result, result.exit_code) == ("cancelled", 130)
    assert names(target) == []


async def test_timeout_removes_the_partial_file(runs: Runs, mirror: Mirror, target: Path) -> None:
    dest = target / "tool"
    result = await runs.run(runs.item("downloader", params(mirror.url("/slow.bin"), dest), timeout=1.0))
    assert (result.result, result.exit_code) == ("timeout", 124)
    assert names(target) == []


async def test_http_error_fails_clearly(runs: Runs, mirror: Mirror, target: Path) -> None:
    result = await runs.run(runs.item("downloader", params(mirror.url("/missing.bin"), target / "tool")))
    assert result.result == "failed"
    assert "HTTP 404 Not Found" in result.message


async def test_file_url_serves_local_mirrors(runs: Runs, target: Path) -> None:
    source = target / "mirror" / "tool v1.bin"
    source.parent.mkdir()
    source.write_bytes(PAYLOAD)
    dest = target / "installed" / "tool"
    result = await runs.run(runs.item("downloader", params(source.as_uri(), dest)))
    assert result.result == "success", result.message
    assert dest.read_bytes() == PAYLOAD
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644


async def test_password_in_url_is_not_reported(runs: Runs, target: Path) -> None:
    url = "http://mirror-user:hunter2@127.0.0.1:9/tool"  # discard port: the connection is refused
    result = await runs.run(runs.item("downloader", params(url, target / "tool")))
    assert result.result == "failed"
    assert "hunter2" not in result.message
    assert "mirror-user:***@127.0.0.1:9" in result.message
