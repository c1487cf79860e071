"""The API client honours ``HTTPS_PROXY`` and ``NO_PROXY`` as kubectl does: a site whose nodes reach the
regional API only through a proxy gets its requests and watches tunnelled (CONNECT), and a server named in
``NO_PROXY`` is reached directly. The proxy here is a real one on loopback, counting the tunnels it opens."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from agent.adapters.kube import Kube
from agent.daemon.own_machine import LCMMACHINES
from testbed.sim.testing import KubeApi

pytestmark = pytest.mark.kube


class ConnectProxy:
    """An HTTP proxy that only tunnels (``CONNECT host:port``), as a site's egress proxy does for TLS."""

    def __init__(self) -> None:
        self.tunnels: list[str] = []
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        if method != "CONNECT":
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            writer.close()
            return
        host, port = target.rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        self.tunnels.append(target)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.fixture
async def proxy() -> AsyncIterator[ConnectProxy]:
    running = ConnectProxy()
    running.server = await asyncio.start_server(running.serve, "127.0.0.1", 0)
    async with running.server:
        yield running


async def test_requests_and_watches_go_through_the_proxy_the_environment_names(
    kube_api: KubeApi, proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = (await kube_api.kube()).endpoint
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with Kube(admin) as kube:  # the environment is read when a client makes its first request
        listed = await kube.list_objects(LCMMACHINES, kube_api.namespace)
        version = listed["metadata"]["resourceVersion"]
        events = kube.watch(LCMMACHINES, kube_api.namespace, resource_version=version, timeout_seconds=1,
                            inactivity_timeout=30)
        async for _ in events:
            pass
    server = urlsplit(admin.server)
    assert set(proxy.tunnels) == {f"{server.hostname}:{server.port}"}


async def test_a_server_named_in_no_proxy_is_reached_directly(
    kube_api: KubeApi, proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = (await kube_api.kube()).endpoint
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", str(urlsplit(admin.server).hostname))
    async with Kube(admin) as kube:  # the environment is read when a client makes its first request
        listed = await kube.list_objects(LCMMACHINES, kube_api.namespace)
    assert listed["items"] == []
    assert proxy.tunnels == []
