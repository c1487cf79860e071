"""The LCMClusterStates (``sd-`` drains, ``sr-`` removals) the rollout wants, and the writes that get there.

The rules only say which states they want to exist, with which value and executor; this module turns that
into creates, patches and deletes against what exists. A state nobody wants any more (an undrain that
finished, a machine that is gone) is deleted, so the objects in the namespace are exactly the operations in
flight. States of other types (``cd-``, MCC's ``helm-deployed``) are not the planner's and are left alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.api.models import API_VERSION, LCMCluster, LCMClusterState
from agent.api.names import DRAIN_TIMEOUT_ANNOTATION, MachineOperation, cluster_state_name
from regional.planning.actions import Action, Create, Delete, Patch
from regional.planning.contract import EXECUTOR_LABEL

MANAGED: frozenset[str] = frozenset({"swarm-drain", "swarm-remove"})


@dataclass(frozen=True)
class Wanted:
    operation: MachineOperation
    machine: str
    value: bool
    executor: str
    reason: str = ""
    timeout: int | None = None
    """A drain's timeout in seconds, for its executor (annotation ``DRAIN_TIMEOUT_ANNOTATION``)."""

    @property
    def name(self) -> str:
        return cluster_state_name(self.operation, self.machine)


def state_writes(
    cluster: LCMCluster, existing: Iterable[LCMClusterState], wanted: Mapping[str, Wanted]
) -> list[Action]:
    """Creates, patches and deletes that make the cluster's managed states those ``wanted`` (by name)."""
    namespace = cluster.metadata.namespace or ""
    actions: list[Action] = []
    have = {
        s.metadata.name: s
        for s in existing
        if s.spec.type in MANAGED and s.spec.cluster_name == cluster.metadata.name and s.metadata.name
    }
    for name, gone in have.items():
        if name not in wanted:
            reason = f"{gone.spec.type} of {gone.spec.arg} no longer needed"
            actions.append(Delete("lcmclusterstates", namespace, name, reason))
    for name, want in wanted.items():
        value = "true" if want.value else "false"
        state = have.get(name)
        if state is None:
            actions.append(Create("lcmclusterstates", namespace, _body(cluster, want), want.reason))
            continue
        patch: dict[str, Any] = {}
        if state.spec.value != value:
            patch["spec"] = {"value": value}
        if state.metadata.labels.get(EXECUTOR_LABEL) != want.executor:
            patch["metadata"] = {"labels": {EXECUTOR_LABEL: want.executor}}
        if want.timeout is not None and state.metadata.annotations.get(DRAIN_TIMEOUT_ANNOTATION) != str(
            want.timeout
        ):
            patch.setdefault("metadata", {})["annotations"] = _timeout(want.timeout)
        if patch:
            actions.append(Patch("lcmclusterstates", namespace, name, patch, reason=want.reason))
    return actions


def _body(cluster: LCMCluster, want: Wanted) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "LCMClusterState",
        "metadata": {
            "name": want.name,
            "namespace": cluster.metadata.namespace,
            "labels": {EXECUTOR_LABEL: want.executor},
            **({} if want.timeout is None else {"annotations": _timeout(want.timeout)}),
        },
        "spec": {
            "clusterName": cluster.metadata.name,
            "type": want.operation,
            "arg": want.machine,
            "value": "true" if want.value else "false",
        },
    }


def _timeout(seconds: int) -> dict[str, str]:
    return {DRAIN_TIMEOUT_ANNOTATION: str(seconds)}
