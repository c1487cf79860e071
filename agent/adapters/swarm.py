"""The local Docker Engine's swarm, through the docker SDK: the join tokens of a manager, a snapshot of the
nodes, services and tasks it manages (for the disruption rules), and a service's forced rolling update.

The SDK is synchronous (requests over the engine's socket): callers on the event loop run these functions with
``asyncio.to_thread``. Every failure of the engine (not reachable, not a manager, an API error) comes back as
one ``SwarmError`` whose message says which engine and why, so the caller can put it in an item's status.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from docker.errors import APIError, DockerException

from agent.adapters.engine_checks import engine_client
from agent.api.swarm_snapshot import SwarmNode, SwarmService, SwarmSnapshot, SwarmTask

T = TypeVar("T")
MODES = {"Replicated": "replicated", "Global": "global", "ReplicatedJob": "replicated-job",
         "GlobalJob": "global-job"}
"""A service's ``Spec.Mode`` key → its mode as ``docker service ls`` names it."""

ENGINE_TIMEOUT = 30.0
"""Seconds one engine call may take: a hung engine must fail the item, not hang the agent's thread pool."""


class SwarmError(Exception):
    """The engine did not give what was asked; the message is fit for an operator (and holds no token)."""


@dataclass(frozen=True)
class JoinTokens:
    """A swarm's join tokens; they print as ``***``, so a stray log line or traceback cannot leak them."""

    manager: str = field(repr=False)
    worker: str = field(repr=False)

    def values(self) -> tuple[str, str]:
        return self.manager, self.worker


def join_tokens(host: str) -> JoinTokens:
    """The join tokens of the swarm the engine at ``host`` manages (blocking; ``host`` is a docker URL)."""
    # 503 "This node is not a swarm manager" (or not in a swarm at all): the engine's own words say it.
    attrs = _manager_call(host, "the join tokens", lambda client: client.inspect_swarm())
    tokens = attrs.get("JoinTokens") or {}
    manager, worker = tokens.get("Manager"), tokens.get("Worker")
    if not (isinstance(manager, str) and manager and isinstance(worker, str) and worker):
        raise SwarmError(f"the Docker Engine at {host} answered without join tokens")
    return JoinTokens(manager=manager, worker=worker)


def _manager_call(host: str, what: str, call: Callable[[Any], T]) -> T:
    """``call(client)`` on the engine at ``host``, every engine failure one ``SwarmError`` saying ``what``."""
    try:
        client = engine_client(host, ENGINE_TIMEOUT)
    except DockerException as exc:
        raise SwarmError(f"cannot reach the Docker Engine at {host}: {exc}") from None
    try:
        return call(client)
    except APIError as exc:
        raise SwarmError(f"the Docker Engine at {host} refused {what}: {exc.explanation or exc}") from None
    except (DockerException, OSError) as exc:
        raise SwarmError(f"cannot reach the Docker Engine at {host}: {exc}") from None
    finally:
        client.close()


def snapshot(host: str) -> SwarmSnapshot:
    """The nodes, services and tasks (those meant to run) of the swarm the engine at ``host`` manages
    (blocking)."""
    def read(client: Any) -> SwarmSnapshot:
        nodes = tuple(_node(n) for n in client.nodes())
        services = tuple(_service(s) for s in client.services())
        tasks = tuple(
            SwarmTask(t.get("ServiceID", ""), t.get("NodeID", ""),
                      running=(t.get("Status") or {}).get("State") == "running")
            for t in client.tasks(filters={"desired-state": "running"})
        )
        return SwarmSnapshot(nodes, services, tasks)

    return _manager_call(host, "the swarm's nodes, services and tasks", read)


def _node(raw: Mapping[str, Any]) -> SwarmNode:
    spec, status = raw.get("Spec") or {}, raw.get("Status") or {}
    manager = raw.get("ManagerStatus") or {}
    return SwarmNode(id=raw["ID"], address=status.get("Addr", ""), role=spec.get("Role", ""),
                     availability=spec.get("Availability", ""), state=status.get("State", ""),
                     reachability=manager.get("Reachability", ""))


def _service(raw: Mapping[str, Any]) -> SwarmService:
    spec = raw.get("Spec") or {}
    mode = spec.get("Mode") or {}
    kind = next((k for k in MODES if k in mode), "Replicated")
    update = spec.get("UpdateConfig") or {}  # absent: swarm's default, one at a time; 0 (omitted): all
    state = (raw.get("UpdateStatus") or {}).get("State", "")
    return SwarmService(
        id=raw["ID"], name=spec.get("Name", raw["ID"]),
        mode=MODES[kind],
        replicas=int((mode.get("Replicated") or {}).get("Replicas", 0)) if kind == "Replicated" else 0,
        labels=dict(spec.get("Labels") or {}),
        update_parallelism=int(update.get("Parallelism", 0)) if update else 1,
        update_order=update.get("Order", "stop-first"),
        updating=state in ("updating", "rollback_started"),
    )


def force_update(host: str, service_id: str) -> None:
    """A rolling ``docker service update --force`` of the service: its tasks are replaced under its own
    update settings, and swarm places the new ones by its spread strategy (blocking)."""
    def update(client: Any) -> None:
        current = client.inspect_service(service_id)
        template = dict(current["Spec"]["TaskTemplate"])
        template["ForceUpdate"] = int(template.get("ForceUpdate", 0)) + 1
        client.update_service(service_id, current["Version"]["Index"], task_template=template,
                              fetch_current_spec=True)

    _manager_call(host, f"a forced update of service {service_id}", update)
