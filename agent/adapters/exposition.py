"""Serving a Prometheus registry over HTTP, on the process's own event loop.

The agent and lcm-scheduler each serve one ``CollectorRegistry`` of their own (never the client library's
global default, so a test can run several in one process) at ``/metrics``, in the format the scraper asks
for (the text format, or OpenMetrics: the client's own ``choose_encoder``). Serving on the event loop, not
in the client library's thread, means a scrape-time collector reads the process's caches from the thread
that changes them: what a scrape shows is one consistent moment.

The server is asyncio's own streams answering one ``GET`` per connection (``Connection: close``), which is
all a scraper needs: a web framework would cost the agent's idle footprint a few MiB (aiohttp's server
alone is 2 MiB) for routing, keep-alive and compression a once-a-minute scrape of a few KiB never uses.

Metrics are never worth a crash loop: an address that cannot be listened on (the port is someone else's,
the address is not this host's) is logged once as an error naming the address and why, and the process
goes on without metrics. ``serve_metrics`` then simply waits for the stop like any other root task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from agent.kits.addresses import Address

log = logging.getLogger(__name__)

PATH = "/metrics"
REQUEST_TIMEOUT = 10.0
"""Seconds a client may take to send its request head: a stalled connection is closed, not kept."""


class MetricsServer:
    """``/metrics`` of one registry; ``bound`` is the address actually listened on once ``start`` worked."""

    def __init__(self, registry: CollectorRegistry, address: Address) -> None:
        self.registry, self.address = registry, address
        self.bound: Address | None = None
        self._server: asyncio.Server | None = None

    async def start(self) -> bool:
        """Listen; False (the error logged) when the address cannot be listened on."""
        try:
            self._server = await asyncio.start_server(self._answer, self.address.host, self.address.port)
        except OSError as exc:
            log.error("cannot serve metrics on %s: %s; going on without metrics", self.address,
                      exc.strerror or exc, extra={"address": str(self.address)})
            return False
        self.bound = Address(self.address.host, self._server.sockets[0].getsockname()[1])
        log.info("serving metrics on http://%s%s", self.bound, PATH, extra={"address": str(self.bound)})
        return True

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One request, one answer, then the connection is closed."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
            writer.write(self._response(head))
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            pass  # a client that went away or sent no request: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _response(self, head: bytes) -> bytes:
        lines = head.decode("latin-1").split("\r\n")
        method, _, target = lines[0].partition(" ")
        path = target.split(" ", 1)[0].split("?", 1)[0]
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        if method != "GET" or path != PATH:
            status, ctype, body = "404 Not Found", "text/plain; charset=utf-8", f"only GET {PATH}\n".encode()
        else:
            encode, ctype = choose_encoder(headers.get("accept", ""))
            status, body = "200 OK", encode(self.registry)
        return (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n").encode() + body


async def serve_metrics(registry: CollectorRegistry, address: Address, stopping: asyncio.Event) -> None:
    """A root task: serve until ``stopping`` is set; without metrics (logged) if the address is refused."""
    server = MetricsServer(registry, address)
    await server.start()
    try:
        await stopping.wait()
    finally:
        await server.stop()
