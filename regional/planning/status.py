"""What the LCMCluster's status tells an operator, and the stuck flag on each machine.

``kubectl get lcmclusters`` shows Requested, Ready and Progress; Progress reads like "deploy 3/5 ready",
"upgrade to swarm-1.1.0 1/3", "ready 5/5", prefixed with "halted, " or "paused, " when the planner has
stopped, or "refused: <reason>". Conditions say why: ``Ready``, ``ReleaseAccepted``, ``OperationStuck``
(naming the machines and what is stuck on them) and ``Paused``. A condition keeps its
``lastTransitionTime`` while its status stays the same, so planning again writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from agent.api.models import LCMCluster
from agent.kits.timestamps import rfc3339
from regional.planning.actions import Patch
from regional.planning.failures import Trouble
from regional.planning.machines import MachineView
from regional.planning.releases import Refusal

SHOWN_TROUBLES = 5
"""Stuck machines named in the condition's message; the rest are counted."""


@dataclass(frozen=True)
class Summary:
    target: str
    applied: str
    """``status.release``: the release every machine was last done with; it stays until the next one is."""
    views: Sequence[MachineView]
    troubles: Sequence[Trouble]
    digests: Mapping[str, str]
    refusal: Refusal | None = None
    paused: bool = False
    blocked: str = ""
    """Why an upgrade stands still, as Progress's prefix (``failure budget spent, ``); empty when it moves."""
    gate_conditions: tuple[tuple[str, str, str, str], ...] = ()
    """(type, status, reason, message) of the rollout gates' conditions (waves.gate_conditions)."""
    converged: int = 0
    """Machines with the wanted spec, all done and undrained (counted by the rules; 0 when not planned)."""
    budget_warnings: Sequence[str] = ()
    """Disruption budget labels the drains' executor could not use (their ``status.warnings``)."""
    rebooting: int = 0
    """Machines the reboot rule is taking through a reboot."""

    @cached_property
    def staying(self) -> list[MachineView]:
        return [v for v in self.views if not v.deleting]

    @property
    def requested(self) -> int:
        return len(self.staying)

    @cached_property
    def ready(self) -> int:
        return sum(1 for v in self.staying if v.released and v.ready)

    @cached_property
    def upgrading(self) -> bool:
        """From ``applied`` to ``target``, until every machine is done with it."""
        moving = self.applied and self.applied != self.target and self.converged < self.requested
        return bool(moving) or any(v.released and v.spec.release != self.target for v in self.staying)

    @cached_property
    def progress(self) -> str:
        if self.refusal is not None:
            return f"refused: {self.refusal.reason}"
        staying = self.staying
        if self.upgrading:
            done = sum(1 for v in staying if v.released and v.spec.release == self.target and v.settled)
            core = f"upgrade to {self.target} {done}/{len(staying)}"
        elif self.converged + self.rebooting == len(staying) and staying:
            core = f"ready {self.ready}/{len(staying)}"
        else:
            core = f"deploy {self.ready}/{len(staying)} ready"
        if leaving := sum(1 for v in self.views if v.leaving):
            core += f", {leaving} leaving"
        if maintenance := sum(1 for v in staying if v.status.maintenance):
            core += f", {maintenance} in maintenance"
        if self.rebooting:
            core += f", {self.rebooting} rebooting"
        prefix = "paused, " if self.paused else "halted, " if self.troubles else self.blocked
        return prefix + core


def _conditions(s: Summary) -> list[tuple[str, str, str, str]]:
    """(type, status, reason, message) of each condition, in a fixed order."""
    requested = s.requested
    if requested == 0:
        ready = ("False", "NoMachines", "the cluster has no machines")
    elif s.ready == requested and not s.upgrading:
        ready = ("True", "AllMachinesReady", s.progress)
    else:
        ready = ("False", "Upgrading" if s.upgrading else "Deploying", s.progress)
    if s.refusal is None:
        accepted = ("True", "Accepted", f"planning from {s.target}")
    else:
        accepted = ("False", s.refusal.reason, s.refusal.message)
    if s.troubles:
        named = "; ".join(f"{t.machine}: {t.reason}" for t in s.troubles[:SHOWN_TROUBLES])
        more = len(s.troubles) - SHOWN_TROUBLES
        stuck = ("True", "Stuck", named + (f" (and {more} more)" if more > 0 else ""))
    else:
        stuck = ("False", "NotStuck", "")
    paused = ("True", "Annotated", "lcm.mirantis.com/paused is \"true\": nothing is changed")
    return [
        ("Ready", *ready),
        ("ReleaseAccepted", *accepted),
        ("OperationStuck", *stuck),
        ("Paused", *(paused if s.paused else ("False", "NotPaused", ""))),
        *s.gate_conditions,
    ]


def _budget_labels(s: Summary) -> tuple[str, str, str, str]:
    if s.budget_warnings:
        named = "; ".join(dict.fromkeys(s.budget_warnings))
        return ("DisruptionBudgetLabels", "False", "InvalidLabel", named)
    return ("DisruptionBudgetLabels", "True", "Valid", "")


def _condition_list(cluster: LCMCluster, s: Summary, now: datetime) -> list[dict[str, Any]]:
    before = {c.type: c for c in cluster.status.conditions}
    generation = cluster.metadata.generation
    out = []
    labels = _budget_labels(s)  # from the first bad label on: a cluster that never had one shows none
    extra = [labels] if s.budget_warnings or labels[0] in before else []
    for kind, status, reason, message in [*_conditions(s), *extra]:
        old = before.get(kind)
        since = old.last_transition_time if old is not None and old.status == status else rfc3339(now)
        condition: dict[str, Any] = {
            "type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": since,
        }
        if generation is not None:
            condition["observedGeneration"] = generation
        out.append(condition)
    return out


def cluster_status_patch(cluster: LCMCluster, s: Summary, now: datetime) -> Patch | None:
    """The status subresource patch; None when the status already says all of it."""
    status = cluster.status
    all_done = s.requested > 0 and s.converged == s.requested and s.refusal is None
    want: dict[str, Any] = {
        "requestedNodes": s.requested,
        "readyNodes": s.ready,
        "release": s.target if all_done else status.release,
        "lcmOperationStuck": bool(s.troubles),
        "progress": s.progress,
    }
    if cluster.metadata.generation is not None:
        want["observedGeneration"] = cluster.metadata.generation
    have = cluster.to_raw().get("status", {})  # what is written: a default the model fills in is not
    patch = {key: value for key, value in want.items() if have.get(key) != value}
    conditions = _condition_list(cluster, s, now)
    if [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in status.conditions] != conditions:
        patch["conditions"] = conditions
    digests: dict[str, Any] = dict.fromkeys(status.release_digests.keys() - s.digests.keys())
    digests |= {name: d for name, d in s.digests.items() if status.release_digests.get(name) != d}
    if digests:
        patch["releaseDigests"] = digests
    if not patch:
        return None
    return Patch(
        "lcmclusters", cluster.metadata.namespace or "", cluster.metadata.name or "", {"status": patch},
        subresource="status", reason=s.progress,
    )


def stuck_flags(views: Sequence[MachineView], troubles: Sequence[Trouble]) -> list[Patch]:
    """``status.lcmOperationStuck`` of each machine, where it changes: set with a trouble, cleared without."""
    reasons = {t.machine: t.reason for t in troubles}
    return [
        Patch(
            "lcmmachines", v.machine.metadata.namespace or "", v.name,
            {"status": {"lcmOperationStuck": v.name in reasons}},
            subresource="status", reason=reasons.get(v.name, "no longer stuck"),
        )
        for v in views
        if v.status.lcm_operation_stuck != (v.name in reasons)
    ]
