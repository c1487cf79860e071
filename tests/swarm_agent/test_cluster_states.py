"""The first control machine executes the LCMClusterStates labelled with its name: drains, undrains and
removes through the release's maintenance playbooks (stand-ins here that record their calls), marks the
target machine, reports, and retries failures."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from agent_harness import capture_info, logged, running, slot, status
from machine_harness import PATIENCE, MakeNode, SwarmNode
from swarm_services import target_machine

from agent.adapters.kube import Kube, Resource
from agent.api.models import LCMClusterState
from agent.daemon.own_machine import LCMMACHINES
from agent.daemon.swarm_executor import LCMCLUSTERSTATES
from agent.decisions.swarm_operations import (
    DRAIN_PLAYBOOK,
    REMOVE_PLAYBOOK,
    Operation,
    Settle,
    failure_after,
    operation,
    retry_at,
    settled,
)
from agent.kits.backoff import Backoff
from agent.kits.timestamps import micro_time

EXECUTOR = "demo-control-0"
UNHANDLED = "cordon-drain is not handled here: the swarm agent only executes swarm-drain and swarm-remove"


def cluster_state(kind: str, target: str, value: str, *, executor: str = EXECUTOR,
                  status_: dict[str, Any] | None = None) -> dict[str, Any]:
    prefix = {"swarm-drain": "sd", "swarm-remove": "sr", "cordon-drain": "cd"}[kind]
    body: dict[str, Any] = {
        "apiVersion": "lcm.mirantis.com/v1alpha1", "kind": "LCMClusterState",
        "metadata": {"name": f"{prefix}-{target}", "labels": {"lcm.mirantis.com/executor": executor}},
        "spec": {"clusterName": "demo", "type": kind, "arg": target, "value": value}}
    if status_ is not None:
        body["status"] = status_
    return body


@pytest.mark.parametrize(("kind", "value", "expected"), [
    ("swarm-drain", "true", Operation(DRAIN_PLAYBOOK, {"availability": "drain"},
                                      ("cordondraining", "cordondrained"))),
    ("swarm-drain", "false", Operation(DRAIN_PLAYBOOK, {"availability": "active"}, ("uncordoning", None))),
    ("swarm-remove", "true", Operation(REMOVE_PLAYBOOK, {})),
    ("swarm-remove", "false", Settle("false", "")),
    ("cordon-drain", "true", Settle(None, UNHANDLED)),
])
def test_what_each_request_asks(kind: str, value: str, expected: Operation | Settle) -> None:
    assert operation(LCMClusterState.from_raw(cluster_state(kind, "m1", value))) == expected


@pytest.mark.parametrize(("kind", "value", "status_", "done"), [
    ("swarm-drain", "true", None, False),
    ("swarm-drain", "true", {"value": "false", "attempt": 3}, False),
    ("swarm-drain", "true", {"value": "true", "attempt": 1}, True),
    ("swarm-drain", "false", {"value": "true", "message": "", "attempt": 1}, False),
    ("swarm-remove", "false", None, False),
    ("swarm-remove", "false", {"value": "false"}, True),
    ("cordon-drain", "true", None, False),
    ("cordon-drain", "true", {"message": "something else"}, False),
    ("cordon-drain", "true", {"message": UNHANDLED}, True),
])
def test_when_a_request_needs_nothing_more(kind: str, value: str, status_: dict[str, Any] | None,
                                          done: bool) -> None:
    assert settled(LCMClusterState.from_raw(cluster_state(kind, "m1", value, status_=status_))) is done


ENDED = datetime(2026, 1, 1, tzinfo=UTC)
PACING = Backoff(base=10.0, cap=100.0)


def failed(value: str, count: int, ended: datetime | None = ENDED) -> dict[str, Any]:
    """A status after ``count`` failed attempts at ``value``, the last ending at ``ended``."""
    failure: dict[str, Any] = {"value": value, "count": count}
    if ended is not None:
        failure["finishedAt"] = micro_time(ended)
    return {"message": "node update refused", "attempt": count, "lastFailure": failure}


@pytest.mark.parametrize(("value", "status_", "earliest", "latest"), [
    ("true", None, None, None),
    ("true", {"value": "false", "attempt": 3}, None, None),
    ("false", failed("true", 3), None, None),  # a changed request starts afresh
    ("true", failed("true", 1, ended=None), None, None),  # no usable time: at once
    ("true", failed("true", 1), 5.0, 10.0),
    ("true", failed("true", 3), 20.0, 40.0),
    ("true", failed("true", 30), 50.0, 100.0),  # capped
])
def test_retries_are_paced_from_the_status(value: str, status_: dict[str, Any] | None,
                                           earliest: float | None, latest: float | None) -> None:
    state = LCMClusterState.from_raw(cluster_state("swarm-drain", "m1", value, status_=status_))
    due = retry_at(state, PACING)
    if earliest is None or latest is None:
        assert due is None
    else:
        assert due is not None
        assert ENDED + timedelta(seconds=earliest) <= due <= ENDED + timedelta(seconds=latest)
        assert retry_at(state, PACING) == due  # the same decision after a restart


@pytest.mark.parametrize(("value", "status_", "count"), [
    ("true", None, 1),
    ("true", failed("true", 2), 3),
    ("false", failed("true", 2), 1),
])
def test_a_failure_counts_the_failures_at_the_requested_value(
    value: str, status_: dict[str, Any] | None, count: int,
) -> None:
    state = LCMClusterState.from_raw(cluster_state("swarm-drain", "m1", value, status_=status_))
    later = ENDED + timedelta(minutes=1)
    assert failure_after(state, later) == {"value": value, "count": count, "finishedAt": micro_time(later)}


class Setup:
    """A control machine whose agent executes, a target machine, and the stand-in playbooks' record."""

    def __init__(self, control: SwarmNode, target: SwarmNode, admin: Kube, record_dir: Path) -> None:
        self.control, self.target, self.admin, self.record_dir = control, target, admin, record_dir

    @property
    def namespace(self) -> str:
        return self.control.namespace

    def calls(self) -> list[str]:
        path = self.record_dir / "calls"
        return path.read_text().splitlines() if path.exists() else []

    async def request(self, kind: str, value: str, target: str = "demo-worker-0", **kw: Any) -> str:
        body = cluster_state(kind, target, value, **kw)
        await self.admin.create(LCMCLUSTERSTATES, self.namespace, body)
        return str(body["metadata"]["name"])

    async def change(self, name: str, value: str) -> None:
        await self.admin.patch(LCMCLUSTERSTATES, self.namespace, name, {"spec": {"value": value}})

    async def state(self, name: str) -> dict[str, Any]:
        return await self.admin.get(LCMCLUSTERSTATES, self.namespace, name)

    async def wait_state(self, name: str, check: Any, within: float = PATIENCE) -> dict[str, Any]:
        return await self._wait(LCMCLUSTERSTATES, name, check, within)

    async def wait_machine(self, name: str, check: Any, within: float = PATIENCE) -> dict[str, Any]:
        return await self._wait(LCMMACHINES, name, check, within)

    async def _wait(self, res: Resource, name: str, check: Any, within: float) -> dict[str, Any]:
        """The object's status once ``check`` holds for it."""
        deadline = time.monotonic() + within
        found: dict[str, Any] = {}
        while time.monotonic() < deadline:
            found = status(await self.admin.get(res, self.namespace, name))
            if check(found):
                return found
            await asyncio.sleep(0.1)
        pytest.fail(f"{name}: timed out, status {found}")


@pytest.fixture
async def setup(machine: MakeNode, admin: Kube, tmp_path: Path) -> Setup:
    control = machine(EXECUTOR)
    target = machine("demo-worker-0")
    await target_machine(admin, control.namespace, "demo-worker-0", "10.9.8.7")
    return Setup(control, target, admin, tmp_path)


def cordon(obj: dict[str, Any]) -> tuple[Any, Any]:
    return status(obj).get("swarmCordonDrain"), status(obj).get("swarmCordonDrainError")


async def test_a_drain_and_its_undrain_mark_the_target_and_report(setup: Setup) -> None:
    control, target = setup.control, setup.target
    await control.create([], type="control")
    cfg = await control.configure(playbook_vars={"record_dir": str(setup.record_dir)})
    async with target.recording(), control.agent(cfg):
        name = await setup.request("swarm-drain", "true")
        drained = await setup.wait_state(name, lambda s: s.get("value") == "true")
        await target.wait_event(lambda o: cordon(o) == ("cordondraining", ""), describe="cordondraining")
        assert cordon(await target.get()) == ("cordondrained", "")
        await setup.change(name, "false")
        undrained = await setup.wait_state(name, lambda s: s.get("value") == "false")
        await target.wait_event(lambda o: cordon(o)[0] == "uncordoning", describe="uncordoning")
        assert cordon(await target.get()) == (None, "")
    assert drained == {"value": "true", "message": "", "attempt": 1}
    assert undrained == {"value": "false", "message": "", "attempt": 2}
    assert setup.calls() == [f"{name} 1 10.9.8.7 drain", f"{name} 2 10.9.8.7 active"]


async def test_a_failing_drain_is_retried_with_its_error_shown_until_it_succeeds(setup: Setup) -> None:
    control, target = setup.control, setup.target
    await control.create([], type="control")
    (setup.record_dir / "fail").touch()
    cfg = await control.configure(playbook_vars={"record_dir": str(setup.record_dir)})
    async with control.agent(cfg):
        name = await setup.request("swarm-drain", "true")
        failing = await setup.wait_state(name, lambda s: s.get("attempt", 0) >= 2)
        marked = await target.get()
        (setup.record_dir / "fail").unlink()
        done = await setup.wait_state(name, lambda s: s.get("value") == "true")
    assert "value" not in failing
    assert "node update refused" in failing["message"]
    assert cordon(marked)[0] == "cordondraining"
    assert "node update refused" in cordon(marked)[1]
    assert done["message"] == ""
    assert cordon(await target.get()) == ("cordondrained", "")
    assert len(setup.calls()) == done["attempt"] >= 3


async def test_a_restarted_agent_keeps_the_pacing_of_earlier_failures(setup: Setup, admin: Kube) -> None:
    await target_machine(admin, setup.namespace, "demo-worker-1", "10.9.8.8")
    await setup.control.create([], type="control")
    paced = await setup.request("swarm-drain", "true")
    # An agent before this one failed it five times, the last just now: its retry is minutes away.
    just_now = failed("true", 5, datetime.now(UTC))
    await admin.patch(LCMCLUSTERSTATES, setup.namespace, paced, {"status": just_now}, subresource="status")
    due = await setup.request("swarm-remove", "true", target="demo-worker-1")  # after it, by name
    cfg = await setup.control.configure(playbook_vars={"record_dir": str(setup.record_dir)},
                                        backoff_base=60.0, backoff_cap=600.0)
    async with setup.control.agent(cfg):
        removed = await setup.wait_state(due, lambda s: s.get("value") == "true")
    assert removed["attempt"] == 1
    assert status(await setup.state(paced)) == just_now  # looked at first, and left for its time
    assert setup.calls() == [f"{due} 1 10.9.8.8 remove"]


async def test_removal_and_requests_not_for_this_agent(setup: Setup, admin: Kube,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    capture_info(caplog)
    await target_machine(admin, setup.namespace, "demo-worker-1", "10.9.8.8")
    await setup.control.create([], type="control")
    cfg = await setup.control.configure(playbook_vars={"record_dir": str(setup.record_dir)})
    async with setup.control.agent(cfg):
        unhandled = await setup.request("cordon-drain", "true")
        other = await setup.request("swarm-drain", "true", target="demo-worker-1", executor="demo-control-1")
        removal = await setup.request("swarm-remove", "true")
        removed = await setup.wait_state(removal, lambda s: s.get("value") == "true")
        answered = await setup.wait_state(unhandled, lambda s: bool(s.get("message")))
        rv = (await setup.state(unhandled))["metadata"]["resourceVersion"]
        # A later request, named after it: once that one is answered, the executor has seen the echo of its
        # answer to the first and picked the first unsettled object by name each time since.
        later = await setup.request("cordon-drain", "true", target="demo-worker-9")
        await setup.wait_state(later, lambda s: bool(s.get("message")))
        assert (await setup.state(unhandled))["metadata"]["resourceVersion"] == rv  # answered once
        assert len([r for r in caplog.records if r.getMessage().startswith(f"{unhandled}: ")]) == 1
    assert removed == {"value": "true", "message": "", "attempt": 1}
    assert answered == {"message": UNHANDLED, "attempt": 0}
    assert status(await setup.state(other)) == {}
    assert setup.calls() == [f"{removal} 1 10.9.8.7 remove"]


async def test_only_a_control_machine_executes_and_never_beside_its_own_item(
    setup: Setup, admin: Kube, caplog: pytest.LogCaptureFixture,
) -> None:
    capture_info(caplog)
    control = setup.control
    await target_machine(admin, setup.namespace, "demo-worker-1", "10.9.8.8")
    slow = {"runner": "ansible", "name": "slow", "version": "1", "phase": "deploy",
            "params": {"playbook": "step.yml", "counter": str(control.counter("slow")), "seconds": "4"}}
    await control.create([], type="worker")
    cfg = await control.configure(playbook_vars={"record_dir": str(setup.record_dir)})
    async with control.agent(cfg):
        first = await setup.request("swarm-drain", "true")
        await control.wait_observed()  # the agent has acted on its machine's spec: a worker's
        assert status(await setup.state(first)) == {}  # a worker's agent executes nothing
        await control.patch_spec({"type": "control"})
        await setup.wait_state(first, lambda s: s.get("value") == "true")

        await control.patch_spec({"stateItems": [slow]})
        await control.wait_slot("slow", running, describe="the item running")
        second = await setup.request("swarm-drain", "true", target="demo-worker-1")
        # The executor took it up, marked its target, and now waits for the machine's own item:
        await logged(caplog, f"{second} swarm-drain=true on machine demo-worker-1")
        await setup.wait_machine("demo-worker-1", lambda s: s.get("swarmCordonDrain") == "cordondraining")
        assert running(slot(await control.get(), "slow"))
        assert setup.calls() == [f"{first} 1 10.9.8.7 drain"]  # the drain waits for the machine's own item
        await setup.wait_state(second, lambda s: s.get("value") == "true")
        assert slot(await control.get(), "slow")["exitCode"] == 0
