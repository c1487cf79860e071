"""A rolling reboot of the stack's cluster through a GracefulRebootRequest, watched until it is over.

The request is named like the cluster (Mirantis' rule); it is over when the scheduler has deleted it and
every machine is Ready with no reboot under way. While it runs, each machine's window in a reboot (from the
first to the last look that saw Mirantis' ``lcm.mirantis.com/graceful-reboot`` annotation on it) and the
most machines in a reboot at once are recorded. Used by the rolling-reboot e2e and ``bench/reboots.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.adapters.kube import Kube, KubeError, Resource
from agent.api.models import KAAS_API_VERSION, GracefulRebootRequest
from regional.planning.contract import GRACEFUL_REBOOT_ANNOTATION
from testbed.lab.stack.stack import Rollout, Stack

REQUESTS = Resource(GracefulRebootRequest.GROUP, "v1alpha1", GracefulRebootRequest.PLURAL)


@dataclass
class RebootRun:
    seconds: float = 0.0
    windows: dict[str, list[float]] = field(default_factory=dict)
    """Machine → [first, last] ``time.monotonic()`` a look saw it in a reboot."""
    most: int = 0
    """The most machines seen in a reboot at once."""


def request_body(stack: Stack, machines: Sequence[str]) -> dict[str, Any]:
    s = stack.settings
    return {"apiVersion": KAAS_API_VERSION, "kind": "GracefulRebootRequest",
            "metadata": {"name": s.cluster, "namespace": s.namespace}, "spec": {"machines": list(machines)}}


async def request_gone(stack: Stack, kube: Kube) -> bool:
    try:
        await kube.get(REQUESTS, stack.settings.namespace, stack.settings.cluster)
    except KubeError as exc:
        if exc.status == 404:
            return True
        raise
    return False


def in_reboot(rollout: Rollout) -> set[str]:
    return {name for name, m in rollout.machines.items()
            if (m["metadata"].get("annotations") or {}).get(GRACEFUL_REBOOT_ANNOTATION) == "true"}


async def rolling_reboot(stack: Stack, kube: Kube, machines: Sequence[str], release: str, *,
                         within: float) -> RebootRun:
    """Request the reboot of ``machines`` (empty: all) and watch it to its end; RuntimeError when the rollout
    halts, TimeoutError after ``within`` seconds."""
    run = RebootRun()
    began = time.monotonic()
    await kube.create(REQUESTS, stack.settings.namespace, request_body(stack, machines))
    while True:
        rollout = await stack.look(kube)
        rebooting = in_reboot(rollout)
        run.most = max(run.most, len(rebooting))
        now = time.monotonic()
        for name in rebooting:
            run.windows.setdefault(name, [now, now])[1] = now
        if rollout.stuck():
            raise RuntimeError(f"the rollout halted: {rollout.stuck()}")
        if not rebooting and rollout.ready(release) and await request_gone(stack, kube):
            run.seconds = time.monotonic() - began
            return run
        if now - began > within:
            raise TimeoutError(f"the rolling reboot did not end within {within:.0f}s: {rollout.summary()}")
        await asyncio.sleep(0.5)
