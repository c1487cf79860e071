"""Drift: which components of the node differ from its desired state, why, and what converges each.

Pure: a ``DesiredState`` and an ``Observed`` in, drifts out, in the fixed order the reconciler converges
them (engine → config → membership → role → labels → containers), so the agent's check, the reconciler and
``lcm-agent reconcile --dry-run`` all read the same answer. Each component is a named check with
``requires_reconcile``; a check whose subject cannot be seen (the engine is down, the node is not in the
swarm yet) is skipped rather than guessed, and the reconciler looks again after converging what came first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from agent.api.desired import DesiredState, Observed, ObservedContainer, RequiredContainer

Component = Literal["engine", "config", "membership", "role", "labels", "containers"]
ORDER: tuple[Component, ...] = ("engine", "config", "membership", "role", "labels", "containers")

Action = Literal[
    "start-engine",  # start dockerd through the service manager
    "restore-config-and-start",  # the engine is down and its daemon.json changed: fix the file, then start
    "restore-config-reload",  # rewrite daemon.json; only reloadable settings differ (SIGHUP)
    "restore-config-restart",  # rewrite daemon.json; a setting differs that only a restart applies
    "join",  # join the swarm with the token for the desired role
    "leave-and-join",  # stuck or in another swarm: leave (forced), then join
    "rejoin-as-manager",  # a demoted manager: leave, join with the manager token, remove the stale entry
    "demote",  # a manager that should be a worker demotes itself
    "reload-labels",  # engine labels into daemon.json, then reload
    "recreate",  # remove and run the listed required containers again
]

RELOADABLE: frozenset[str] = frozenset({
    "debug", "labels", "live-restore", "max-concurrent-downloads", "max-concurrent-uploads",
    "max-download-attempts", "default-runtime", "runtimes", "authorization-plugins", "insecure-registries",
    "registry-mirrors", "shutdown-timeout", "features",
})
"""daemon.json keys dockerd applies on SIGHUP (dockerd reference, "Configuration reload behavior"); a change
to any other key needs a restart, which stops the node's containers unless live-restore is on."""


@dataclass(frozen=True)
class Drift:
    """One drifted component: the operator-facing ``reason`` and the ``action`` that converges it."""

    component: Component
    reason: str
    action: Action
    containers: tuple[str, ...] = ()
    """For ``recreate``: the required containers to recreate, by name."""


class Check(Protocol):
    """One component of the node. ``moot_after`` names components whose drift hides this one's: while
    they drift, this component cannot be observed or will change anyway when they converge."""

    @property
    def name(self) -> Component: ...

    @property
    def moot_after(self) -> tuple[Component, ...]: ...

    def requires_reconcile(self, desired: DesiredState, observed: Observed) -> Drift | None: ...


class EngineCheck:
    name: Component = "engine"
    moot_after: tuple[Component, ...] = ()

    def requires_reconcile(self, desired: DesiredState, observed: Observed) -> Drift | None:
        if observed.engine_running:
            return None
        # A daemon.json broken by hand would keep the engine from starting: fix the file first.
        config_drift = ConfigCheck().requires_reconcile(desired, observed)
        action: Action = "start-engine" if config_drift is None else "restore-config-and-start"
        return Drift("engine", f"not running ({observed.engine_error})", action)


class ConfigCheck:
    name: Component = "config"
    moot_after: tuple[Component, ...] = ()

    def requires_reconcile(self, desired: DesiredState, observed: Observed) -> Drift | None:
        want = desired.config
        if want is None or observed.config_content == want.content:
            return None
        if observed.config_content is None:
            reason = "daemon.json is missing"
        else:
            changed = _changed(observed.config_content, want.content)
            reason = f"daemon.json differs from the recorded one ({changed})"
        return Drift("config", reason, config_action(observed.config_content, want.content))


class MembershipCheck:
    name: Component = "membership"
    moot_after: tuple[Component, ...] = ("engine",)

    def requires_reconcile(self, desired: DesiredState, observed: Observed) -> Drift | None:
        want = desired.membership
        if want is None:
            return None
        if observed.swarm_state == "inactive":
            return Drift("membership", "not in a swarm", "join")
        if observed.swarm_state != "active":
            return Drift("membership", f"swarm membership is {observed.swarm_state or 'unknown'}",
                         "leave-and-join")
        if want.cluster_id and observed.cluster_id and want.cluster_id != observed.cluster_id:
            return Drift("membership", f"in swarm {observed.cluster_id}, not {want.cluster_id}",
                         "leave-and-join")
        compared = want.cluster_id and observed.cluster_id
        if not compared and not _overlap(observed.remote_managers, want.manager_addresses):
            return Drift("membership", f"its managers ({', '.join(observed.remote_managers) or 'none'}) are "
                         f"none of {', '.join(want.manager_addresses)}: another swarm", "leave-and-join")
        return None


class RoleCheck:
    name: Component = "role"
    moot_after: tuple[Component, ...] = ("engine", "membership")

    def requires_reconcile(self, desired: DesiredState, observed: Observed) -> Drift | None:
        want = desired.membership
        if want is None or observed.swarm_state != "active":
            return None
        if want.role == "manager" and not observed.manager:
            return Drift("role", "a worker, should be a manager", "rejoin-as-manager")
        if want.role == "worker" and observed.manager:
            return Drift("role", "a manager, should be a worker", "demote")
        return None


class LabelsCheck:
    name: Component = "labels"
    moot_after: tuple[Component, ...] = ("engine",)

    def requires_reconcile(self, desired: DesiredState, observed: Observed) -> Drift | None:
        if desired.labels is None:
            return None
        wrong = [_label_reason(key, value, observed.labels)
                 for key, value in sorted(desired.labels.values.items()) if observed.labels.get(key) != value]
        return Drift("labels", "; ".join(wrong), "reload-labels") if wrong else None


class ContainersCheck:
    name: Component = "containers"
    moot_after: tuple[Component, ...] = ("engine",)

    def requires_reconcile(self, desired: DesiredState, observed: Observed) -> Drift | None:
        found = {c.name: c for c in observed.containers}
        reasons = [(c.name, reason) for c in desired.containers if (reason := _container_reason(c, found))]
        if not reasons:
            return None
        return Drift("containers", "; ".join(f"{name}: {why}" for name, why in reasons), "recreate",
                     containers=tuple(name for name, _ in reasons))


CHECKS: tuple[Check, ...] = (EngineCheck(), ConfigCheck(), MembershipCheck(), RoleCheck(), LabelsCheck(),
                             ContainersCheck())
"""Every component, in ``ORDER``."""


def check(component: Component) -> Check:
    return next(c for c in CHECKS if c.name == component)


def drift(desired: DesiredState, observed: Observed) -> tuple[Drift, ...]:
    """Every drifted component, in ``ORDER``, leaving out those moot after an earlier drift."""
    found: list[Drift] = []
    for each in CHECKS:
        if any(d.component in each.moot_after for d in found):
            continue
        if (d := each.requires_reconcile(desired, observed)) is not None:
            found.append(d)
    return tuple(found)


def unchecked(drifts: tuple[Drift, ...]) -> tuple[Component, ...]:
    """Components ``drift`` skipped because an earlier drift made them moot (for the dry run's output)."""
    drifted = {d.component for d in drifts}
    return tuple(c.name for c in CHECKS if drifted & set(c.moot_after))


def config_action(current: str | None, recorded: str) -> Action:
    """Reload when only reloadable settings differ, restart otherwise (a file that is not a JSON object
    may have changed anything)."""
    before, after = _json_object(current or "{}"), _json_object(recorded)
    if before is None or after is None:
        return "restore-config-restart"
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    return "restore-config-reload" if changed <= RELOADABLE else "restore-config-restart"


def labels_in_config(content: str | None, labels: Mapping[str, str]) -> str:
    """``content`` (a daemon.json) with ``labels`` set in its ``labels`` list, other labels kept; raises
    ValueError when the file is not a JSON object (restoring the recorded file comes first)."""
    config = _json_object(content or "{}")
    if config is None:
        raise ValueError("daemon.json is not a JSON object")
    kept = [entry for entry in config.get("labels", []) if str(entry).split("=", 1)[0] not in labels]
    config["labels"] = kept + [f"{key}={value}" for key, value in sorted(labels.items())]
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _changed(current: str, recorded: str) -> str:
    before, after = _json_object(current), _json_object(recorded)
    if before is None:
        return "not a JSON object"
    if after is None:
        return "content"
    keys = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    return "changed: " + ", ".join(keys) if keys else "formatting"


def _host(address: str) -> str:
    return address.rsplit(":", 1)[0] if address.count(":") == 1 or address.startswith("[") else address


def _overlap(observed: tuple[str, ...], wanted: tuple[str, ...]) -> bool:
    return bool({_host(a) for a in observed} & {_host(a) for a in wanted})


def _label_reason(key: str, value: str, observed: Mapping[str, str]) -> str:
    if key not in observed:
        return f"{key} missing (want {key}={value})"
    return f"{key}={observed[key]}, want {key}={value}"


def _container_reason(want: RequiredContainer, found: Mapping[str, ObservedContainer]) -> str:
    have = found.get(want.name)
    if have is None:
        return "missing"
    if have.version != want.version:
        return f"version {have.version or 'unknown'}, want {want.version}"
    if have.image != want.image:
        return f"image {have.image}, want {want.image}"
    if have.state != "running":
        return f"{have.state}, not running"
    return ""
