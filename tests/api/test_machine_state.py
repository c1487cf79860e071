"""A machine's state, item by item: what `kubectl get lcmmachines` shows and what the agent runs next."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

from agent.api.models import (
    EXIT_CODE_RUNNING,
    LCMMachineSpec,
    LCMMachineStatus,
    Phase,
    StateItem,
    StateItemStatus,
)
from agent.decisions.hashing import item_hash
from agent.decisions.state import (
    item_done,
    machine_state,
    pending_items,
    pending_operation,
    progress,
    progress_text,
    spec_error,
)

# The demo release's items for a worker, in spec order.
ITEMS = (
    ("preflight", "prepare"),
    ("sysctl", "prepare"),
    ("docker-engine", "deploy"),
    ("swarm-join", "deploy"),
    ("daemon-config", "reconfigure"),
)
ALL = tuple(name for name, _ in ITEMS)


def spec_of(names: Iterable[str] = ALL, **fields: Any) -> LCMMachineSpec:
    phases = dict(ITEMS)
    items = [
        {"runner": "ansible", "name": n, "version": "1", "phase": phases[n], "params": {"p": n}}
        for n in names
    ]
    return LCMMachineSpec.model_validate(
        {"stateItems": items, "lcmType": "ucp", "components": {"ucpVersion": "1.0.0"}, **fields})


@dataclass
class Machine:
    """A compact row of the state table: which items are done, failed, running or stale."""

    items: tuple[str, ...] = ALL
    done: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    running: tuple[str, ...] = ()
    stale: tuple[str, ...] = ()  # finished with exit 0, but for an older version of the item
    ip: bool = True
    spec: dict[str, Any] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)

    def build(self) -> tuple[LCMMachineSpec, LCMMachineStatus]:
        spec = spec_of(self.items, **self.spec)
        by_name = {i.name: i for i in spec.state_items}
        entries: dict[str, Any] = {}
        for names, exit_code in ((self.done, 0), (self.failed, 2), (self.running, EXIT_CODE_RUNNING)):
            for n in names:
                entries[n] = {
                    "hash": item_hash(by_name[n], spec.agent_config.version),
                    "exitCode": exit_code,
                }
        for n in self.stale:
            entries[n] = {
                "hash": item_hash(by_name[n].model_copy(update={"version": "0"}), ""),
                "exitCode": 0,
            }
        addresses = [{"type": "Hostname", "address": "w0"}]
        if self.ip:
            addresses.append({"type": "InternalIP", "address": "10.0.0.5"})
        status = LCMMachineStatus.model_validate(
            {"addresses": addresses, "stateItemStatuses": entries, "agentVersion": "0.1.0",
             "components": {"ucpVersion": "1.0.0"}, **self.status}
        )
        return spec, status


DONE: dict[str, Any] = {"done": ALL}
REBOOT_ASKED: dict[str, Any] = {"spec": {"rebootRequired": True}}
OS_REBOOT: dict[str, Any] = {"status": {"hostInfo": {"rebootRequired": True}}}
NEW_AGENT: dict[str, Any] = {"spec": {"agentConfig": {"version": "0.2.0"}}}

UCP_MISSING: dict[str, Any] = {"status": {"components": {}}}
BASTION: dict[str, Any] = {"spec": {"type": "bastion"}}

STATES = {
    # 1. Uninitialized: nothing counts before the agent reports an InternalIP (an empty one counts).
    "fresh object": (Machine(items=(), ip=False), "Uninitialized"),
    "hostname only": (
        Machine(items=(), ip=False, status={"addresses": [{"type": "Hostname", "address": "h"}]}),
        "Uninitialized",
    ),
    "items but no ip": (Machine(ip=False), "Uninitialized"),
    "all done but no ip": (Machine(ip=False, **DONE), "Uninitialized"),
    "InternalIP with an empty address": (
        Machine(items=(), ip=False, status={"addresses": [{"type": "InternalIP", "address": ""}]}),
        "Pending"),
    "lower-case address type does not count": (
        Machine(items=(), ip=False, status={"addresses": [{"type": "internalip", "address": "1.2.3.4"}]}),
        "Uninitialized"),
    "RHEL subscription not applied": (
        Machine(**DONE, spec={"rhelLicenseSubscription": "s"}), "Uninitialized"),
    "RHEL subscription applied": (
        Machine(**DONE, spec={"rhelLicenseSubscription": "s"}, status={"rhelLicenseApplied": True}), "Ready"),
    # 2. A bastion is Ready, whatever its items.
    "bastion, nothing done": (Machine(**BASTION), "Ready"),
    "bastion, no ip": (Machine(ip=False, **BASTION), "Uninitialized"),
    # 3. By lcmType.
    "no lcmType": (Machine(**DONE, spec={"lcmType": ""}), "Uninitialized"),
    "unknown lcmType": (Machine(**DONE, spec={"lcmType": "UCP"}), "Uninitialized"),
    "byo: versions only": (Machine(spec={"lcmType": "byo"}), "Ready"),
    "byo: no reported version": (Machine(**DONE, spec={"lcmType": "byo"}, **UCP_MISSING), "Pending"),
    "byo: versions differ": (
        Machine(spec={"lcmType": "byo"}, status={"components": {"ucpVersion": "0.9.0"}}), "Upgrade"),
    "k0s: items and reboot only": (Machine(**DONE, spec={"lcmType": "k0s"}, **UCP_MISSING), "Ready"),
    "k0s: reboot asked": (Machine(**DONE, spec={"lcmType": "k0s", "rebootRequired": True}), "Reboot"),
    "ucp: no reported version": (Machine(**DONE, **UCP_MISSING), "Deploy"),
    "ucp: versions differ": (Machine(**DONE, status={"components": {"ucpVersion": "0.9.0"}}), "Upgrade"),
    "ucp: reboot beats versions": (Machine(**DONE, spec={"rebootRequired": True}, **UCP_MISSING), "Reboot"),
    # 4. The items' state.
    "no items": (Machine(items=()), "Pending"),
    "no items, reboot asked": (Machine(items=(), **REBOOT_ASKED), "Pending"),
    "nothing run yet: deploy items there": (Machine(), "Deploy"),
    "prepare half done": (Machine(done=("preflight",)), "Deploy"),
    "only prepare items": (Machine(items=("preflight", "sysctl")), "Prepare"),
    "only prepare items, done: still Prepare": (
        Machine(items=("preflight",), done=("preflight",)), "Prepare"),
    "prepare done": (Machine(done=("preflight", "sysctl")), "Deploy"),
    "deploy failed, reconfigure done": (
        Machine(done=("preflight", "sysctl", "docker-engine", "daemon-config"), failed=("swarm-join",)),
        "Deploy",
    ),
    "prepare not done is not looked at once deploy items are": (Machine(done=ALL[2:]), "Ready"),
    "deploy done": (Machine(done=ALL[:4]), "Reconfigure"),
    "reconfigure running": (Machine(done=ALL[:4], running=("daemon-config",)), "Reconfigure"),
    "reconfigure stale after release change": (
        Machine(done=ALL[:4], stale=("daemon-config",)), "Reconfigure"),
    "only deploy items": (Machine(items=("docker-engine",)), "Deploy"),
    "only reconfigure items": (Machine(items=("daemon-config",)), "Reconfigure"),
    "pending phase beats reboot": (Machine(done=ALL[:4], **REBOOT_ASKED), "Reconfigure"),
    "all done": (Machine(**DONE), "Ready"),
    "reboot asked": (Machine(**DONE, **REBOOT_ASKED), "Reboot"),
    "reboot asked, requested not completed": (
        Machine(**DONE, spec={"rebootRequired": True},
                status={"reboot": {"requestedAt": "2026-01-01T00:00:00Z"}}),
        "Reboot",
    ),
    "reboot asked and completed": (
        Machine(**DONE, spec={"rebootRequired": True}, status={"reboot": {"completed": True}}), "Ready"),
    "os asks for reboot: Mirantis says Ready": (Machine(**DONE, **OS_REBOOT), "Ready"),
    "agent version differs: Mirantis says Ready": (Machine(**DONE, **NEW_AGENT), "Ready"),
    "halted agent still reports its state": (Machine(**DONE, spec={"haltAgent": True}), "Ready"),
}


@pytest.mark.parametrize("case", STATES.values(), ids=STATES.keys())
def test_machine_state(case: tuple[Machine, str]) -> None:
    machine, expected = case
    assert machine_state(*machine.build()) == expected


PENDING = {
    "all done": (Machine(**DONE), ""),
    "os asks for reboot": (Machine(**DONE, **OS_REBOOT), "Reboot"),
    "spec asks for reboot": (Machine(**DONE, **REBOOT_ASKED), "Reboot"),
    "agent version differs": (Machine(**DONE, **NEW_AGENT), "AgentUpgrade"),
    "agent version not reported": (Machine(**DONE, **NEW_AGENT, status={"agentVersion": ""}), "AgentUpgrade"),
    "reboot before upgrade": (Machine(**DONE, **OS_REBOOT, spec={"agentConfig": {"version": "0.2.0"}}),
                              "Reboot"),
    "items not done: nothing pending yet": (Machine(done=ALL[:4], **NEW_AGENT), ""),
    "no items": (Machine(items=(), **OS_REBOOT), ""),
}


@pytest.mark.parametrize("case", PENDING.values(), ids=PENDING.keys())
def test_pending_operation_shows_what_lcm_agent_still_waits_for(case: tuple[Machine, str]) -> None:
    machine, expected = case
    assert pending_operation(*machine.build()) == expected


def test_overwrites_alone_do_not_change_done() -> None:
    """As in Mirantis: the hash is the item's; the scheduler renders overwrites into the items
    (tests/planning/test_machine_spec.py), which is what re-runs them."""
    spec, status = Machine(**DONE).build()
    changed = spec.model_copy(update={"state_items_overwrites": {"swarm-join": {"role": "manager"}}})
    assert machine_state(changed, status) == machine_state(spec, status) == "Ready"


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({}, ""),
        ({"agentConfig": {"version": "latest"}}, "spec.agentConfig.version"),
        ({"stateItems": [{"runner": "bash", "name": "a"}, {"runner": "bash", "name": "a"}]}, "duplicate"),
    ],
)
def test_spec_error_names_what_stops_the_agent(spec: dict[str, Any], error: str) -> None:
    found = spec_error(LCMMachineSpec.model_validate(spec))
    assert (error in found) if error else found == ""


def _entry(the_item: StateItem, exit_code: int, version: str = "") -> StateItemStatus:
    return StateItemStatus(hash=item_hash(the_item, version), exit_code=exit_code)


ITEM = StateItem(runner="ansible", name="docker-engine", version="1", params={"channel": "stable",
                                                                              "ucp_tag": "3.5"})
OLD = "0.3.0-150-g0a0a0a0a"


@pytest.mark.parametrize(
    ("entry", "version", "done"),
    [
        (None, "", False),
        (_entry(ITEM, 0), "", True),
        (_entry(ITEM, 1), "", False),
        (_entry(ITEM, 255), "", False),
        (_entry(ITEM, -9), "", False),  # killed by a signal
        (_entry(ITEM, EXIT_CODE_RUNNING), "", False),
        (_entry(ITEM.model_copy(update={"version": "0"}), 0), "", False),  # older version in the slot
        (_entry(ITEM, 0, OLD), OLD, True),
        (_entry(ITEM, 0), OLD, False),  # the old agent's hash sees ucp_tag
        (StateItemStatus(hash="", exit_code=0), "", False),
    ],
)
def test_item_done(entry: StateItemStatus | None, version: str, done: bool) -> None:
    assert item_done(ITEM, entry, version) is done


@pytest.mark.parametrize(
    ("machine", "expected"),
    [
        (Machine(items=()), (0, 0)),
        (Machine(), (0, 5)),
        (Machine(done=("preflight",)), (1, 5)),
        (Machine(done=("preflight", "sysctl"), failed=("docker-engine",), running=("swarm-join",)), (2, 5)),
        (Machine(done=ALL[1:], stale=("preflight",)), (4, 5)),
        (Machine(**DONE), (5, 5)),
        (Machine(ip=False, **DONE), (5, 5)),  # progress counts items, whatever the state
    ],
)
def test_progress(machine: Machine, expected: tuple[int, int]) -> None:
    spec, status = machine.build()
    assert progress(spec, status) == expected
    assert progress_text(spec, status) == f"{expected[0]}/{expected[1]}"


def test_progress_ignores_status_slots_of_items_no_longer_in_spec() -> None:
    spec, status = Machine(**DONE).build()
    smaller = spec.model_copy(update={"state_items": spec.state_items[:2]})
    assert progress(smaller, status) == (2, 2)


@pytest.mark.parametrize(
    ("machine", "phase", "expected"),
    [
        (Machine(), "prepare", ["preflight", "sysctl"]),
        (Machine(), "deploy", ["docker-engine", "swarm-join"]),
        (Machine(done=("preflight",)), "prepare", ["sysctl"]),
        # A failed item is still pending.
        (Machine(failed=("preflight",)), "prepare", ["preflight", "sysctl"]),
        (Machine(running=("sysctl",)), "prepare", ["preflight", "sysctl"]),
        (Machine(done=("sysctl",), stale=("preflight",)), "prepare", ["preflight"]),
        # Spec order, not alphabetical or phase-template order.
        (Machine(items=("swarm-join", "docker-engine")), "deploy", ["swarm-join", "docker-engine"]),
        (Machine(**DONE), "reconfigure", []),
        (Machine(items=("preflight",)), "reconfigure", []),
    ],
)
def test_pending_items_in_spec_order(machine: Machine, phase: Phase, expected: list[str]) -> None:
    spec, status = machine.build()
    assert [i.name for i in pending_items(spec, status, phase)] == expected
