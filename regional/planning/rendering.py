"""A machine's spec as the planner wants it, and the one merge patch that gets it there.

Items come from the release's templates for the machine's type, overridden by the LCMCluster's own
``spec.machineTypes`` (an item of the same name replaces the release's, its params merged over the
release's; new names are added). Of ``swarm-init`` and ``swarm-join`` a machine gets one: the first control
machine inits, every other machine joins, and a machine keeps the one it has.

Machine-specific params (swarm addresses, join Secrets, engine labels: the keys of
``contract.PLANNED_PARAMS``) and the operator's ``stateItemsOverwrites`` are rendered into the machine's own
items' params, where Mirantis' item hash sees them: a change re-runs the item on both systems. The
overwrites themselves stay as the operator wrote them (the agent merges them again when it runs an item, to
the same values); planner-owned keys found there (the layout before the Mirantis hash) are removed.

A patch is emitted only when the wanted spec differs from the machine's, and holds only what differs: the
fleet is measured in API writes per machine.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from agent.api.models import (
    LCM_TYPE,
    AgentConfig,
    AssignedMachineType,
    ClusterRelease,
    LCMCluster,
    LCMMachine,
    StateItem,
)
from regional.planning.contract import (
    FINALIZER,
    NODE_LABEL_PREFIX,
    NODE_LABELS,
    PLANNED_PARAMS,
    SWARM_INIT,
    SWARM_ITEMS,
    SWARM_JOIN,
    manager_token_secret,
    worker_token_secret,
)
from regional.planning.machines import MachineView

Overwrites = Mapping[str, Mapping[str, str]]



@dataclass(frozen=True)
class Target:
    """The spec fields (and finalizers) the planner writes on a machine."""

    items: tuple[StateItem, ...]
    overwrites: Overwrites
    release: str
    agent_config: AgentConfig
    finalizers: tuple[str, ...]
    lcm_type: str = LCM_TYPE
    ucp_version: str = ""
    """``spec.components.ucpVersion``: the release's version, the stack the items converge a node to."""

    @classmethod
    def of(cls, machine: LCMMachine) -> Target:
        """What the machine has now: the start of a change that touches only some fields."""
        spec = machine.spec
        return cls(
            spec.state_items, spec.state_items_overwrites, spec.release, spec.agent_config,
            machine.metadata.finalizers, spec.lcm_type, spec.components.ucp_version,
        )


def _overlay(release_items: tuple[StateItem, ...], own: tuple[StateItem, ...]) -> tuple[StateItem, ...]:
    """The release's items with the cluster's: same name → the cluster's item, params merged over (and the
    release's phase when the cluster's item names none)."""
    by_name = {item.name: item for item in own}
    merged = [
        by_name[item.name].model_copy(update={"params": {**item.params, **by_name[item.name].params},
                                              "phase": by_name[item.name].phase or item.phase})
        if item.name in by_name
        else item
        for item in release_items
    ]
    names = {item.name for item in release_items}
    return (*merged, *(item for item in own if item.name not in names))


def _as_state_items(
    release: ClusterRelease, machine_type: AssignedMachineType, decommission: bool
) -> tuple[StateItem, ...]:
    """The type's templates as machine items; decommission templates become ``reconfigure`` items."""
    templates = release.spec.machine_types.get(machine_type, ())
    return tuple(
        StateItem(
            runner=t.runner, name=t.name, version=t.version, params=t.params,
            phase="reconfigure" if decommission else (t.phase or ""),
        )
        for t in templates
        if (t.phase == "decommission") is decommission
    )


class Templates:
    """One release's items per machine type, with the cluster's overrides; built once per plan."""

    def __init__(self, release: ClusterRelease, cluster: LCMCluster) -> None:
        self.release = release.metadata.name or ""
        self.version = release.spec.version
        agent = release.spec.agent
        self.agent_config = AgentConfig(
            version=agent.version, download_url=agent.download_url, sha256=agent.sha256, args=agent.args
        )
        types: tuple[AssignedMachineType, ...] = ("control", "worker", "bastion")
        own = cluster.spec.machine_types
        self._items = {t: _overlay(_as_state_items(release, t, False), own.get(t, ())) for t in types}
        self._prepare = {t: tuple(i for i in self._items[t] if i.phase == "prepare") for t in types}
        self._decommission = {t: _as_state_items(release, t, True) for t in types}
        self._full: dict[tuple[AssignedMachineType, str], tuple[StateItem, ...]] = {}
        self._raw: dict[int, tuple[StateItem, dict[str, Any]]] = {}

    def full(self, machine_type: AssignedMachineType, swarm_item: str) -> tuple[StateItem, ...]:
        """Every item of the type, with ``swarm_item`` as its only swarm item (memoised: shared by many)."""
        key = (machine_type, swarm_item)
        if key not in self._full:
            self._full[key] = self._with_swarm_item(self._items[machine_type], swarm_item)
        return self._full[key]

    def prepare(self, machine_type: AssignedMachineType) -> tuple[StateItem, ...]:
        return self._prepare[machine_type]

    def prepare_only(self, machine_type: AssignedMachineType) -> bool:
        """The type has nothing beyond prepare items: prepared is done."""
        return len(self._prepare[machine_type]) == len(self._items[machine_type])

    def decommission(self, machine_type: AssignedMachineType) -> tuple[StateItem, ...]:
        return self._decommission[machine_type]

    def raw(self, items: tuple[StateItem, ...]) -> list[dict[str, Any]]:
        """``items`` as JSON, memoised per item: thousands of machines share most of their items. The memo
        holds the item itself, so its id cannot be reused by another one while the memo lives."""
        out = []
        for item in items:
            known = self._raw.get(id(item))
            if known is None:
                known = self._raw[id(item)] = (item, item.model_dump(mode="json", by_alias=True,
                                                                     exclude_defaults=True))
            out.append(known[1])
        return out

    def _with_swarm_item(self, items: tuple[StateItem, ...], chosen: str) -> tuple[StateItem, ...]:
        """Where the type lists its swarm item(s), the chosen one. A release may list ``swarm-join`` only
        under ``worker``: other control machines then join with that template (their role param differs)."""
        template = next((i for i in items if i.name == chosen), None)
        if template is None:
            template = next((i for group in self._items.values() for i in group if i.name == chosen), None)
        out: list[StateItem] = []
        for item in items:
            if item.name not in SWARM_ITEMS:
                out.append(item)
            elif template is not None and template not in out:
                out.append(template)
        return tuple(out)


@dataclass(frozen=True)
class Swarm:
    """What a machine's swarm params are made of, the same for every machine in one plan."""

    cluster: str
    first: MachineView | None
    managers: str
    """``managerAddresses`` for a machine joining now."""
    dedicated_control_plane: bool


def swarm_item_for(v: MachineView, swarm: Swarm) -> str:
    """The machine's swarm item: the one it has, else init for the first control machine, else join."""
    if v.swarm_item is not None:
        return v.swarm_item
    return SWARM_INIT if v.control and v is swarm.first else SWARM_JOIN


def planned_params(v: MachineView, items: tuple[StateItem, ...], swarm: Swarm) -> dict[str, dict[str, str]]:
    """The overwrites the planner owns, for the items the machine gets (docs/swarm.md has the table)."""
    names = {item.name for item in items}
    ip = v.ip or ""
    out: dict[str, dict[str, str]] = {}
    drain = swarm.dedicated_control_plane
    availability = {"availability": "drain" if drain else "active"} if v.control else {}
    if SWARM_INIT in names:
        out[SWARM_INIT] = {
            "advertiseAddress": ip,
            "managerTokenSecret": manager_token_secret(swarm.cluster),
            "workerTokenSecret": worker_token_secret(swarm.cluster),
            **availability,
        }
    if SWARM_JOIN in names:
        # Set once, when the machine is let in: a joined node needs no address, and a new list would change
        # the item's hash and re-run every join in the cluster each time a manager comes or goes.
        written = _current_param(v, SWARM_JOIN, "managerAddresses")
        out[SWARM_JOIN] = {
            "role": "manager" if v.control else "worker",
            "managerAddresses": written or swarm.managers,
            "joinTokenSecret": (manager_token_secret if v.control else worker_token_secret)(swarm.cluster),
            "advertiseAddress": ip,
            **availability,
        }
    if NODE_LABELS in names:
        out[NODE_LABELS] = {"labels": engine_labels(v.machine.metadata.labels)}
    return out


def engine_labels(labels: Mapping[str, str]) -> str:
    """The ``labels`` param: the machine's labels under ``swarm.lcm.mirantis.com/``, as compact JSON."""
    prefix = NODE_LABEL_PREFIX
    own = {k.removeprefix(prefix): val for k, val in labels.items() if k.startswith(prefix)}
    return json.dumps(own, sort_keys=True, separators=(",", ":")) if own else "{}"


def _current_param(v: MachineView, item: str, key: str) -> str | None:
    """A param as the machine has it now: in its item, or (the layout before) in its overwrites."""
    own = next((i.params.get(key) for i in v.spec.state_items if i.name == item), None)
    return own or v.spec.state_items_overwrites.get(item, {}).get(key)


def operator_overwrites(existing: Overwrites) -> dict[str, dict[str, str]]:
    """The overwrites without the planner's keys (which the layout before the Mirantis hash kept there)."""
    out: dict[str, dict[str, str]] = {}
    for name, params in existing.items():
        owned = PLANNED_PARAMS.get(name, frozenset())
        kept = {k: val for k, val in params.items() if k not in owned}
        if kept:
            out[name] = kept
    return out


def rendered_items(items: tuple[StateItem, ...], *layers: Overwrites) -> tuple[StateItem, ...]:
    """``items`` with each layer's params for an item merged over its own, later layers winning; items no
    layer touches (or whose params it restates) are the very same objects, so lists stay shared."""
    out = []
    for item in items:
        params = dict(item.params)
        for layer in layers:
            params.update(layer.get(item.name, {}))
        out.append(item if params == item.params else item.model_copy(update={"params": params}))
    return tuple(out)


def target(v: MachineView, items: tuple[StateItem, ...], templates: Templates, swarm: Swarm) -> Target:
    """The machine's spec with ``items`` from ``templates``, their machine-specific params and the operator's
    overwrites rendered in, and the finalizer when the items put its node in the swarm."""
    finalizers = v.machine.metadata.finalizers
    if FINALIZER not in finalizers and any(item.name in SWARM_ITEMS for item in items):
        finalizers = (*finalizers, FINALIZER)
    overwrites = operator_overwrites(v.spec.state_items_overwrites)
    rendered = rendered_items(items, planned_params(v, items, swarm), overwrites)
    return Target(rendered, overwrites, templates.release, templates.agent_config, finalizers, LCM_TYPE,
                  templates.version)


def _overwrites_patch(old: Overwrites, new: Overwrites) -> dict[str, Any]:
    patch: dict[str, Any] = dict.fromkeys(old.keys() - new.keys())
    for name, params in new.items():
        before = old.get(name)
        if before is None:
            patch[name] = dict(params)
            continue
        inner: dict[str, Any] = dict.fromkeys(before.keys() - params.keys())
        inner |= {k: val for k, val in params.items() if before.get(k) != val}
        if inner:
            patch[name] = inner
    return patch


def same_items(have: tuple[StateItem, ...], want: tuple[StateItem, ...]) -> bool:
    """Item lists equal field by field. What pydantic's ``==`` does, minus its generic checks: this runs for
    every machine of every plan."""
    return len(have) == len(want) and all(
        a.__dict__ == b.__dict__ and a.__pydantic_extra__ == b.__pydantic_extra__
        for a, b in zip(have, want, strict=True)
    )


def _build(config: AgentConfig) -> tuple[str, str, str, tuple[str, ...]]:
    """The fields the planner sets; others (another writer's) survive a merge patch and must not count."""
    return config.version, config.download_url, config.sha256, config.args


def machine_patch(machine: LCMMachine, want: Target, templates: Templates) -> dict[str, Any] | None:
    """The merge patch from the machine's spec to ``want``; None when they agree."""
    spec = machine.spec
    changes: dict[str, Any] = {}
    if not same_items(spec.state_items, want.items):
        changes["stateItems"] = templates.raw(want.items)
    if spec.state_items_overwrites != want.overwrites:
        changes["stateItemsOverwrites"] = _overwrites_patch(spec.state_items_overwrites, want.overwrites)
    if spec.release != want.release:
        changes["release"] = want.release
    if _build(spec.agent_config) != _build(want.agent_config):
        changes["agentConfig"] = want.agent_config.model_dump(mode="json", by_alias=True)
    if spec.lcm_type != want.lcm_type:
        changes["lcmType"] = want.lcm_type
    if spec.components.ucp_version != want.ucp_version:
        changes["components"] = {"ucpVersion": want.ucp_version}
    patch: dict[str, Any] = {"spec": changes} if changes else {}
    if machine.metadata.finalizers != want.finalizers:
        patch["metadata"] = {"finalizers": list(want.finalizers)}
    return patch or None


def without_finalizer(machine: LCMMachine) -> Target:
    """The machine as it is, minus the planner's finalizer: its node has left, the object may go."""
    current = Target.of(machine)
    return replace(current, finalizers=tuple(f for f in current.finalizers if f != FINALIZER))
