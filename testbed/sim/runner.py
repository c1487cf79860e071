"""Running a simulator: in-process for tests (``async with Simulator(...)``) or as a process (``serve``).

A simulator owns a state directory: ``sim.sqlite`` (objects and history, so a restart keeps them), ``tls/``
(its CA and certificate, reused so old kubeconfigs stay valid), ``admin-token``, the key it signs
ServiceAccount tokens with (``service-account-key``) and the admin ``kubeconfig``.
Shutdown goes in steps: stop accepting, end the open watches cleanly, let running requests finish, close the
store. A signal only sets the stop event; a second one gets the default action and kills the process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from aiohttp import web

from testbed.kubeconfig import write_kubeconfig
from testbed.sim.auth import new_token
from testbed.sim.errors import ApiError
from testbed.sim.faults import Faults
from testbed.sim.registry import Registry
from testbed.sim.resources import ResourceType
from testbed.sim.server import ApiServer
from testbed.sim.store import Store
from testbed.sim.tokens import TokenIssuer
from testbed.tls import ensure_certificate, write_private

log = logging.getLogger(__name__)

SIGNING_KEY = "service-account-key"
"""The key bound tokens are signed with, kept so that tokens outlive a restart as on a real server."""
SHUTDOWN_GRACE = 5.0
"""Seconds running requests get to finish at shutdown (watches are ended at once, not waited for)."""


class Simulator:
    """One API simulator on a loopback port; ``url``, ``kubeconfig_path`` and ``admin_token`` reach it."""

    def __init__(
        self, state_dir: Path, *, host: str = "127.0.0.1", port: int = 0, tls: bool = True,
        admin_token: str | None = None, crd_paths: Sequence[Path] = (), bookmark_interval: float = 60.0,
        kubeconfig_path: Path | None = None, extra_hosts: Sequence[str] = (),
    ) -> None:
        self.state_dir = state_dir
        self.host, self.port, self.tls = host, port, tls
        self.crd_paths = tuple(crd_paths)
        self.bookmark_interval = bookmark_interval
        self.kubeconfig_path = kubeconfig_path or state_dir / "kubeconfig"
        self.extra_hosts = tuple(extra_hosts)
        self.admin_token = admin_token or _stored_token(state_dir / "admin-token")
        self.url = ""
        self._server: ApiServer | None = None
        self._runner: web.AppRunner | None = None

    @property
    def registry(self) -> Registry:
        return self._api().registry

    @property
    def faults(self) -> Faults:
        return self._api().faults

    @property
    def token_issuer(self) -> TokenIssuer:
        """Issues and checks bound tokens; a test may move its ``clock`` to expire one."""
        return self._api().issuer

    def _api(self) -> ApiServer:
        if self._server is None:
            raise RuntimeError("the simulator is not running")
        return self._server

    async def start(self) -> None:
        # Owner-only from the start: sim.sqlite holds every agent's bearer token and the join tokens.
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        registry = Registry(Store(self.state_dir / "sim.sqlite"), crd_paths=self.crd_paths)
        issuer = TokenIssuer(_stored_token(self.state_dir / SIGNING_KEY).encode(), time.time)
        self._server = ApiServer(registry, admin_token=self.admin_token, issuer=issuer,
                                 bookmark_interval=self.bookmark_interval)
        self._runner = web.AppRunner(self._server.app, handler_cancellation=True,
                                     shutdown_timeout=SHUTDOWN_GRACE, access_log=None)
        await self._runner.setup()
        hosts = (self.host, *self.extra_hosts)
        cert = ensure_certificate(self.state_dir / "tls", hosts) if self.tls else None
        ssl_context = cert.server_context() if cert else None
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=ssl_context)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"{'https' if cert else 'http'}://{host}:{self.port}"
        ca_pem = cert.ca_pem if cert else None
        write_kubeconfig(self.kubeconfig_path, self.url, self.admin_token, ca_pem=ca_pem)
        log.info("API simulator serving on %s (kubeconfig %s)", self.url, self.kubeconfig_path)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._server is not None:
            self._server.registry.close()
            self._server = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def load(self, paths: Sequence[Path]) -> int:
        """Creates (or replaces) the objects in YAML files or directories, as ``kubectl apply`` would."""
        docs = sorted(_documents(paths), key=_load_order)
        for doc in docs:
            try:
                _apply(self.registry, doc)
            except ApiError as exc:
                what = f'{doc.get("kind")} "{doc.get("metadata", {}).get("name", "")}"'
                raise dataclasses.replace(exc, message=f"cannot load {what}: {exc.message}") from exc
        return len(docs)


def _stored_token(path: Path) -> str:
    """A secret (admin token, signing key) kept from an earlier run, or a new one saved (0600)."""
    if path.exists():
        return path.read_text().strip()
    token = new_token()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(path, token.encode())
    return token


def _documents(paths: Sequence[Path]) -> Iterator[dict[str, Any]]:
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json")) \
            if path.is_dir() else [path]
        for file in files:
            for doc in yaml.safe_load_all(file.read_text()):
                if isinstance(doc, dict) and doc.get("kind", "").endswith("List") and "items" in doc:
                    yield from doc["items"]
                elif isinstance(doc, dict):
                    yield doc


def _load_order(doc: Mapping[str, Any]) -> int:
    """CRDs before their objects, namespaces before what lives in them."""
    return {"CustomResourceDefinition": 0, "Namespace": 1}.get(doc.get("kind", ""), 2)


def _apply(registry: Registry, doc: dict[str, Any]) -> None:
    rt = _type_of(registry, doc)
    meta = doc.setdefault("metadata", {})
    namespace = meta.setdefault("namespace", "default") if rt.namespaced else ""
    try:
        registry.create(rt, namespace, doc)
    except ApiError as exc:
        if exc.code != 409:
            raise
        current = registry.get(rt, namespace, meta["name"])
        meta["resourceVersion"] = current["metadata"]["resourceVersion"]
        registry.replace(rt, namespace, meta["name"], doc)


def _type_of(registry: Registry, doc: Mapping[str, Any]) -> ResourceType:
    for rt in registry.resource_types():
        if rt.group_version == doc.get("apiVersion") and rt.kind == doc.get("kind"):
            return rt
    kind, version = doc.get("kind"), doc.get("apiVersion")
    raise ApiError(404, "NotFound", f'no matches for kind "{kind}" in version "{version}"')


def serve(simulator: Simulator, load: Sequence[Path] = ()) -> None:
    """Runs until SIGTERM or SIGINT, then shuts down cleanly (the CLI's ``lcmctl sim serve``)."""
    asyncio.run(_serve(simulator, load))


async def _serve(simulator: Simulator, load: Sequence[Path]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal() -> None:
        stop.set()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    async with simulator:
        if load:
            log.info("loaded %d objects from %s", simulator.load(load), ", ".join(map(str, load)))
        await stop.wait()
        log.info("stopping the API simulator")
