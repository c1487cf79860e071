"""The metrics endpoint as a scraper sees it: the text format by default, OpenMetrics when asked for, one
answer per connection, nothing but ``GET /metrics``; several registries served side by side."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter

from agent.adapters.exposition import MetricsServer
from agent.kits.addresses import Address


async def get(server: MetricsServer, request: str) -> tuple[str, dict[str, str], str]:
    """(status line, headers, body) of one raw request, read until the server closes the connection."""
    assert server.bound is not None
    reader, writer = await asyncio.open_connection(server.bound.host, server.bound.port)
    writer.write(request.encode())
    await writer.drain()
    answer = await reader.read()  # to EOF: the server closes after one answer
    writer.close()
    head, _, body = answer.decode().partition("\r\n\r\n")
    status, *lines = head.split("\r\n")
    return status, {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}, body


async def test_text_by_default_openmetrics_on_request_and_only_get_metrics() -> None:
    registries = [CollectorRegistry(), CollectorRegistry()]
    for n, registry in enumerate(registries):
        Counter("lcm_test_things", "Things.", registry=registry).inc(n + 1)
    servers = [MetricsServer(registry, Address("127.0.0.1", 0)) for registry in registries]
    for server in servers:
        assert await server.start()
    try:
        status, headers, body = await get(servers[0], "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == "HTTP/1.1 200 OK"
        assert headers["content-type"].startswith("text/plain; version=0.0.4")
        assert int(headers["content-length"]) == len(body.encode())
        assert "lcm_test_things_total 1.0" in body
        _, _, other = await get(servers[1], "GET /metrics?x=1 HTTP/1.1\r\n\r\n")
        assert "lcm_test_things_total 2.0" in other
        status, headers, body = await get(
            servers[0], "GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0\r\n\r\n")
        assert headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
        assert body.endswith("# EOF\n")
        for request in ("GET / HTTP/1.1\r\n\r\n", "POST /metrics HTTP/1.1\r\n\r\n"):
            status, _, _ = await get(servers[0], request)
            assert status == "HTTP/1.1 404 Not Found"
    finally:
        for server in servers:
            await server.stop()


async def test_a_port_taken_by_another_server_is_refused_and_said() -> None:
    first = MetricsServer(CollectorRegistry(), Address("127.0.0.1", 0))
    assert await first.start()
    assert first.bound is not None
    second = MetricsServer(CollectorRegistry(), first.bound)
    try:
        assert not await second.start()
        assert second.bound is None
    finally:
        await first.stop()
