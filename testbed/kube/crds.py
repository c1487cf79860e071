"""The project's CRDs installed into an API server (ours, or a user's own cluster) and waited for until
Established, and removed again where this run made them."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from agent.adapters.kube import Kube, KubeError, Resource
from testbed.kube.objects import create_or_replace

CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)
POLL = 0.2

Wait = Callable[[str, Callable[[], Awaitable[object]]], Awaitable[None]]
"""``wait(what, attempt)``: retries ``attempt`` until it succeeds; raises, naming ``what``, if never."""


def deadline_wait(within: float) -> Wait:
    """A ``Wait`` that gives up ``within`` seconds from now with the last error the server gave."""
    deadline = time.monotonic() + within

    async def wait(what: str, attempt: Callable[[], Awaitable[object]]) -> None:
        while True:
            try:
                await attempt()
                return
            except KubeError as exc:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the API server did not {what} within {within:g}s: {exc}") from exc
            await asyncio.sleep(POLL)

    return wait


async def install_crds(kube: Kube, paths: Sequence[Path], wait: Wait) -> list[str]:
    """Creates (or replaces) each CRD, then waits until all are Established; the names it created anew."""
    created = []
    for path in paths:
        crd: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
        name = crd["metadata"]["name"]
        try:
            if await create_or_replace(kube, CRDS, "", crd):
                created.append(name)
        except KubeError as exc:
            raise KubeError(exc.status, exc.reason, f"the CRD {path.name} was refused: {exc}") from exc
        await wait(f"establish the CRD {name}", _established(kube, name))
        # Established is not yet servable: until its watch cache is filled a list answers 429.
        served = Resource(crd["spec"]["group"], crd["spec"]["versions"][0]["name"],
                          crd["spec"]["names"]["plural"], namespaced=False)
        await wait(f"serve {served.plural}", functools.partial(kube.list_objects, served))
    return created


def _established(kube: Kube, name: str) -> Callable[[], Awaitable[None]]:
    async def check() -> None:
        conditions = ((await kube.get(CRDS, "", name)).get("status") or {}).get("conditions") or []
        if not any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
            raise KubeError(0, "NotEstablished", f"CRD {name}: {conditions}")
    return check
