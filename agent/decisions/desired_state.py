"""Deriving a node's desired state from its LCMMachine: which items feed which component.

Pure: the agent calls ``derive_desired`` once the machine is Ready with items other than those last
recorded (``items_digest`` tells), with the ``daemon.json`` the engine had right then, and keeps the result
(``agent.api.desired.DesiredState``) for the reconciler. An item is read with the params its runner got
(``hashing.effective_params``: its own with the machine's overwrites on top), the same ones its hash
covers, so the record says what the playbook was actually given. Which params feed which component is the
swarm contract (``docs/swarm.md``) plus the required-container convention of ``docs/reconciler.md``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping

from pydantic import ValidationError

from agent.api.desired import (
    SWARM_PORT,
    DaemonConfig,
    DesiredState,
    DesiredStateError,
    EngineLabels,
    Membership,
    RequiredContainer,
)
from agent.api.models import LCMMachine, StateItem
from agent.decisions.hashing import effective_params


def items_digest(machine: LCMMachine) -> str:
    """The spec's items and the hashes their statuses carry: equal digests mean the same deployed state."""
    statuses = machine.status.state_item_statuses
    pairs = sorted((item.name, statuses[item.name].hash if item.name in statuses else "")
                   for item in machine.spec.state_items)
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()


def derive_desired(
    machine: LCMMachine, config: DaemonConfig | None, *, cluster_id: str, recorded_at: str,
) -> DesiredState | None:
    """The desired state of a Ready machine, from its items' effective params; None when its items
    deploy nothing of the engine's. Raises DesiredStateError for params the contract does not allow (the
    playbook succeeded, so this means a release bug: better said loudly than guessed around)."""
    items = [(item, effective_params(item, machine.spec.state_items_overwrites))
             for item in machine.spec.state_items]
    membership = _membership(items, cluster_id)
    labels = _labels(items)
    containers = tuple(_container(item, params) for item, params in items if "container" in params)
    if membership is None and labels is None and not containers:
        return None
    return DesiredState(items_digest=items_digest(machine), release=machine.spec.release,
                        recorded_at=recorded_at, config=config, membership=membership, labels=labels,
                        containers=containers)


def _membership(items: Iterable[tuple[StateItem, Mapping[str, str]]], cluster_id: str) -> Membership | None:
    for item, params in items:
        if "managerTokenSecret" in params:  # swarm-init: the first manager, joined through itself
            address = params.get("advertiseAddress", "")
            return Membership(role="manager", manager_addresses=(f"{address}:{SWARM_PORT}",),
                              advertise_address=address, join_token_secret=params["managerTokenSecret"],
                              cluster_id=cluster_id, version=item.version)
        if "joinTokenSecret" in params:
            role = params.get("role", "worker")
            if role not in ("manager", "worker"):
                raise DesiredStateError(f"item {item.name!r}: role {role!r} is neither manager nor worker")
            addresses = tuple(a.strip() for a in params.get("managerAddresses", "").split(",") if a.strip())
            return Membership(role=role, manager_addresses=addresses,
                              advertise_address=params.get("advertiseAddress", ""),
                              join_token_secret=params["joinTokenSecret"],
                              cluster_id=cluster_id if role == "manager" else "", version=item.version)
    return None


def _labels(items: Iterable[tuple[StateItem, Mapping[str, str]]]) -> EngineLabels | None:
    for item, params in items:
        if "labels" in params:
            try:
                values = json.loads(params["labels"])
            except ValueError as exc:
                raise DesiredStateError(f"item {item.name!r}: labels are not JSON: {exc}") from None
            if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
                raise DesiredStateError(f"item {item.name!r}: labels must be a JSON object of strings")
            return EngineLabels(values=values, version=item.version)
    return None


def _container(item: StateItem, params: Mapping[str, str]) -> RequiredContainer:
    try:
        command = json.loads(params.get("command", "[]"))
    except ValueError as exc:
        raise DesiredStateError(f"item {item.name!r}: command is not a JSON list: {exc}") from None
    if not isinstance(command, list) or not all(isinstance(a, str) for a in command):
        raise DesiredStateError(f"item {item.name!r}: command must be a JSON list of strings")
    try:
        return RequiredContainer(name=params["container"], image=params.get("image", ""),
                                 command=tuple(command), version=item.version,
                                 network_mode=params.get("networkMode", "host"))
    except ValidationError as exc:
        raise DesiredStateError(f"item {item.name!r}: {exc.errors(include_url=False)}") from None
