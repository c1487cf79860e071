"""The cluster's GracefulRebootRequest: which machines it still waits for, and what its status says.

Mirantis names the request like the cluster it concerns (``kaas.mirantis.com/v1alpha1``, same namespace);
``spec.machines`` lists LCMMachines, empty for every machine of the cluster. The planner:

- refuses a request naming machines the cluster does not have (another cluster's, or none): condition
  ``Accepted`` false, reason ``UnknownMachines``, the names in its message; nothing is rebooted until the
  request is corrected;
- otherwise hands the reboot rule (``reboots.py``) the machines still ``pending`` and records in
  ``status.rebooted`` each machine once its agent reports the reboot completed;
- deletes the request when every machine named is rebooted and back in service, as Mirantis does;
- refuses a request named like no LCMCluster of its namespace (``unclaimed``): condition ``Accepted``
  false, reason ``UnknownCluster``, so its author learns the name is wrong instead of waiting on nothing.

A machine already rebooting for another reason (its OS asked) when the request names it is not rebooted
twice: the reboot under way counts. Mirantis' kind has no status; ours is an extension.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.api.models import GracefulRebootRequest, LCMCluster
from agent.kits.timestamps import rfc3339
from regional.planning.actions import Action, Delete, Patch
from regional.planning.machines import MachineView
from regional.planning.reboots import in_reboot


@dataclass(frozen=True)
class RebootRequests:
    """What the cluster's request asks of this plan."""

    pending: frozenset[str] = frozenset()
    """Machines the accepted request still waits for: the reboot rule reboots them."""
    unrecorded: frozenset[str] = frozenset()
    """Machines of the request whose reboot its status does not show yet."""
    writes: tuple[Action, ...] = field(default=())
    """The request's status patch, or its deletion when it is done."""


def cluster_request(
    cluster: LCMCluster, requests: Sequence[GracefulRebootRequest],
) -> GracefulRebootRequest | None:
    return next((r for r in requests if r.metadata.name == cluster.metadata.name
                 and r.metadata.namespace == cluster.metadata.namespace
                 and r.metadata.deletion_timestamp is None), None)


def judge(
    cluster: LCMCluster, requests: Sequence[GracefulRebootRequest], views: Sequence[MachineView],
    now: datetime,
) -> RebootRequests:
    request = cluster_request(cluster, requests)
    if request is None:
        return RebootRequests()
    namespace, name = request.metadata.namespace or "", request.metadata.name or ""
    staying = {v.name: v for v in views if not v.deleting}
    known = {v.name for v in views}
    unknown = sorted({m for m in request.spec.machines if m not in known})
    if unknown:
        message = f"not machines of cluster {cluster.metadata.name}: {', '.join(unknown)}"
        status = _status(request, (), (), "refused", ("False", "UnknownMachines", message), now)
        return RebootRequests(writes=_patch(request, status))
    targets = list(dict.fromkeys(request.spec.machines or staying))
    recorded = set(request.status.rebooted)
    rebooted = recorded | {
        t for t in targets if (v := staying.get(t)) is not None and in_reboot(v) and v.spec.reboot_required
        and v.status.reboot is not None and v.status.reboot.completed}
    pending = [t for t in targets if t not in rebooted and t in staying]
    if not pending and not any(in_reboot(staying[t]) for t in targets if t in staying):
        return RebootRequests(writes=(Delete("gracefulrebootrequests", namespace, name,
                                             "every machine rebooted and back"),))
    done = [t for t in targets if t in rebooted]
    accepted = ("True", "Accepted", f"rolling reboot of {len(targets)} machines")
    status = _status(request, pending, done, f"rebooted {len(done)}/{len(targets)}", accepted, now)
    return RebootRequests(frozenset(pending), frozenset(t for t in targets if t not in recorded),
                          _patch(request, status))


def unclaimed(request: GracefulRebootRequest, now: datetime) -> tuple[Action, ...]:
    """The status of a request no cluster answers for (the LCMCluster named like it does not exist)."""
    if request.metadata.deletion_timestamp is not None:
        return ()
    message = f"no LCMCluster {request.metadata.name} in namespace {request.metadata.namespace}"
    status = _status(request, (), (), "refused", ("False", "UnknownCluster", message), now)
    return _patch(request, status)


def _status(
    request: GracefulRebootRequest, pending: Sequence[str], rebooted: Sequence[str], progress: str,
    accepted: tuple[str, str, str], now: datetime,
) -> dict[str, Any]:
    old = next((c for c in request.status.conditions if c.type == "Accepted"), None)
    state, reason, message = accepted
    since = old.last_transition_time if old is not None and old.status == state else rfc3339(now)
    condition = {"type": "Accepted", "status": state, "reason": reason, "message": message,
                 "lastTransitionTime": since}
    return {"pending": list(pending), "rebooted": list(rebooted), "progress": progress,
            "conditions": [condition]}


def _patch(request: GracefulRebootRequest, status: dict[str, Any]) -> tuple[Action, ...]:
    have = request.to_raw().get("status", {})
    if all(have.get(key) == value for key, value in status.items()):
        return ()
    return (Patch("gracefulrebootrequests", request.metadata.namespace or "", request.metadata.name or "",
                  {"status": status}, subresource="status", reason=status["progress"]),)
