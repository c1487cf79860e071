"""Serving a Prometheus registry over HTTP, on the process's own event loop.

The agent and lcm-scheduler each serve one ``CollectorRegistry`` of their own (never the client library's
global default, so a test can run several in one process) at ``/metrics`` with the standard client's own
aiohttp handler, which negotiates the text or the OpenMetrics format. Serving on the event loop, not in
the client library's thread, means a scrape-time collector reads the process's caches from the thread that
changes them: what a scrape shows is one consistent moment.

Metrics are never worth a crash loop: an address that cannot be listened on (the port is someone else's,
the address is not this host's) is logged once as an error naming the address and why, and the process
goes on without metrics. ``serve_metrics`` then simply waits for the stop like any other root task.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from agent.kits.addresses import Address

log = logging.getLogger(__name__)

PATH = "/metrics"


class MetricsServer:
    """``/metrics`` of one registry; ``bound`` is the address actually listened on once ``start`` worked."""

    def __init__(self, registry: CollectorRegistry, address: Address) -> None:
        self.registry, self.address = registry, address
        self.bound: Address | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> bool:
        """Listen; False (the error logged) when the address cannot be listened on."""
        app = web.Application()
        app.router.add_get(PATH, make_aiohttp_handler(self.registry))
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.address.host, self.address.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            log.error("cannot serve metrics on %s: %s; going on without metrics", self.address,
                      exc.strerror or exc, extra={"address": str(self.address)})
            return False
        self._runner = runner
        port = runner.addresses[0][1] if runner.addresses else self.address.port
        self.bound = Address(self.address.host, port)
        log.info("serving metrics on http://%s%s", self.bound, PATH, extra={"address": str(self.bound)})
        return True

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def serve_metrics(registry: CollectorRegistry, address: Address, stopping: asyncio.Event) -> None:
    """A root task: serve until ``stopping`` is set; without metrics (logged) if the address is refused."""
    server = MetricsServer(registry, address)
    await server.start()
    try:
        await stopping.wait()
    finally:
        await server.stop()
