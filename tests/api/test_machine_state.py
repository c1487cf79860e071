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
from agent.decisions.state import item_done, machine_state, pending_items, progress, progress_text

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
    return LCMMachineSpec.model_validate({"stateItems": items, **fields})


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
                    "hash": item_hash(by_name[n], spec.state_items_overwrites),
                    "exitCode": exit_code,
                }
        for n in self.stale:
            entries[n] = {
                "hash": item_hash(by_name[n].model_copy(update={"version": "0"}), {}),
                "exitCode": 0,
            }
        addresses = [{"type": "Hostname", "address": "w0"}]
        if self.ip:
            addresses.append({"type": "InternalIP", "address": "10.0.0.5"})
        status = LCMMachineStatus.model_validate(
            {"addresses": addresses, "stateItemStatuses": entries, "agentVersion": "0.1.0", **self.status}
        )
        return spec, status


DONE: dict[str, Any] = {"done": ALL}
REBOOT_ASKED: dict[str, Any] = {"spec": {"rebootRequired": True}}
OS_REBOOT: dict[str, Any] = {"status": {"hostInfo": {"rebootRequired": True}}}
NEW_AGENT: dict[str, Any] = {"spec": {"agentConfig": {"version": "0.2.0"}}}

STATES = {
    # 1. Uninitialized: nothing counts before the agent reports an InternalIP.
    "fresh object": (Machine(items=(), ip=False), "Uninitialized"),
    "hostname only": (
        Machine(items=(), ip=False, status={"addresses": [{"type": "Hostname", "address": "h"}]}),
        "Uninitialized",
    ),
    "items but no ip": (Machine(ip=False), "Uninitialized"),
    "all done but no ip": (Machine(ip=False, **DONE), "Uninitialized"),
    "reboot but no ip": (Machine(ip=False, **DONE, **REBOOT_ASKED), "Uninitialized"),
    # 2. Pending: reported in, nothing assigned.
    "no items": (Machine(items=()), "Pending"),
    "no items, reboot asked": (Machine(items=(), **REBOOT_ASKED), "Pending"),
    "no items, other agent version": (Machine(items=(), **NEW_AGENT), "Pending"),
    # 3. The first phase with an item not done.
    "nothing run yet": (Machine(), "Prepare"),
    "prepare half done": (Machine(done=("preflight",)), "Prepare"),
    "prepare item failed": (Machine(done=("preflight",), failed=("sysctl",)), "Prepare"),
    "prepare item running": (Machine(done=("preflight",), running=("sysctl",)), "Prepare"),
    "prepare item stale": (Machine(done=ALL[1:], stale=("preflight",)), "Prepare"),
    "prepare done": (Machine(done=("preflight", "sysctl")), "Deploy"),
    "deploy failed": (
        Machine(done=("preflight", "sysctl", "docker-engine"), failed=("swarm-join",)),
        "Deploy",
    ),
    "deploy failed, reconfigure done": (
        Machine(done=("preflight", "sysctl", "docker-engine", "daemon-config"), failed=("swarm-join",)),
        "Deploy",
    ),
    "later phases done, prepare not": (Machine(done=ALL[2:]), "Prepare"),
    "deploy done": (Machine(done=ALL[:4]), "Reconfigure"),
    "reconfigure running": (Machine(done=ALL[:4], running=("daemon-config",)), "Reconfigure"),
    "reconfigure stale after release change": (
        Machine(done=ALL[:4], stale=("daemon-config",)),
        "Reconfigure",
    ),
    "only deploy items": (Machine(items=("docker-engine",)), "Deploy"),
    "only reconfigure items": (Machine(items=("daemon-config",)), "Reconfigure"),
    "pending phase beats reboot": (Machine(done=ALL[:4], **REBOOT_ASKED), "Reconfigure"),
    "pending phase beats upgrade": (Machine(done=ALL[:2], **NEW_AGENT), "Deploy"),
    # 4.-6. Everything done: Reboot, then Upgrade, refine Ready.
    "all done": (Machine(**DONE), "Ready"),
    "only prepare items, done": (Machine(items=("preflight",), done=("preflight",)), "Ready"),
    "reboot asked": (Machine(**DONE, **REBOOT_ASKED), "Reboot"),
    "reboot asked, requested not completed": (
        Machine(**DONE, spec={"rebootRequired": True}, status={"reboot": {"requestedAt": "t"}}),
        "Reboot",
    ),
    "reboot asked and completed": (
        Machine(**DONE, spec={"rebootRequired": True}, status={"reboot": {"completed": True}}),
        "Ready",
    ),
    "os asks for reboot": (Machine(**DONE, **OS_REBOOT), "Reboot"),
    "os asks again after a completed reboot": (
        Machine(**DONE, status={"reboot": {"completed": True}, "hostInfo": {"rebootRequired": True}}),
        "Reboot",
    ),
    "reboot beats upgrade": (
        Machine(**DONE, spec={"rebootRequired": True, "agentConfig": {"version": "0.2.0"}}),
        "Reboot",
    ),
    "agent version differs": (Machine(**DONE, **NEW_AGENT), "Upgrade"),
    "agent version not reported": (Machine(**DONE, **NEW_AGENT, status={"agentVersion": ""}), "Upgrade"),
    "agent version matches": (Machine(**DONE, spec={"agentConfig": {"version": "0.1.0"}}), "Ready"),
    "no target agent version": (
        Machine(**DONE, spec={"agentConfig": {"downloadURL": "http://m/a"}}),
        "Ready",
    ),
    "halted agent still reports its state": (Machine(**DONE, spec={"haltAgent": True}), "Ready"),
}


@pytest.mark.parametrize("case", STATES.values(), ids=STATES.keys())
def test_machine_state(case: tuple[Machine, str]) -> None:
    machine, expected = case
    assert machine_state(*machine.build()) == expected


def test_overwrites_take_part_in_done() -> None:
    """A machine-specific param changed after the item ran re-runs the item on that machine only."""
    spec, status = Machine(**DONE).build()
    changed = spec.model_copy(update={"state_items_overwrites": {"swarm-join": {"role": "manager"}}})
    assert machine_state(spec, status) == "Ready"
    assert machine_state(changed, status) == "Deploy"
    assert [i.name for i in pending_items(changed, status, "deploy")] == ["swarm-join"]


def _entry(
    the_item: StateItem, exit_code: int, overwrites: dict[str, dict[str, str]] | None = None
) -> StateItemStatus:
    return StateItemStatus(hash=item_hash(the_item, overwrites or {}), exit_code=exit_code)


ITEM = StateItem(runner="ansible", name="docker-engine", version="1", params={"channel": "stable"})
OVER = {"docker-engine": {"channel": "edge"}}


@pytest.mark.parametrize(
    ("entry", "overwrites", "done"),
    [
        (None, {}, False),
        (_entry(ITEM, 0), {}, True),
        (_entry(ITEM, 1), {}, False),
        (_entry(ITEM, 255), {}, False),
        (_entry(ITEM, -9), {}, False),  # killed by a signal
        (_entry(ITEM, EXIT_CODE_RUNNING), {}, False),
        (_entry(ITEM.model_copy(update={"version": "0"}), 0), {}, False),  # older version in the slot
        (_entry(ITEM, 0), OVER, False),  # ran before the machine's overwrite appeared
        (_entry(ITEM, 0, OVER), OVER, True),
        (_entry(ITEM, 0, OVER), {}, False),  # overwrite removed again: back to the item's own params
        (_entry(ITEM, 0), {"docker-engine": {"timeout": "600"}}, True),  # volatile: no re-run
        (StateItemStatus(hash="", exit_code=0), {}, False),
    ],
)
def test_item_done(entry: StateItemStatus | None, overwrites: dict[str, dict[str, str]], done: bool) -> None:
    assert item_done(ITEM, entry, overwrites) is done


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
