"""The agent's one handle on its own LCMMachine, and the followed-objects facility under it: a write's answer
is the newest version at once and its own watch event is no second change; a refusal that can never land
is tried once whatever the policy; a refusal for now is retried as the policy allows and lands once its
cause is gone."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest
from agent_harness import Node, status

from agent.adapters.followed import ONCE, UNTIL_LANDED, Retry
from agent.adapters.kube import Kube, connect
from agent.adapters.watching import WatchSettings
from agent.daemon.own_machine import OwnMachine
from agent.kits.backoff import Backoff

BACKOFF = Backoff(base=0.1, cap=0.5)
PATIENCE = 30.0
"""Seconds a test waits for an event before it fails (a bound on a hang, not a timing assertion)."""


def handle(kube: Kube, node: Node) -> OwnMachine:
    return OwnMachine(kube, node.namespace, node.name, watch=WatchSettings(), backoff=BACKOFF)


@pytest.fixture
async def agent_kube(node: Node) -> AsyncIterator[Kube]:
    """The agent's client: a ServiceAccount allowed its own LCMMachine, which exists."""
    await node.create([])
    kube = await connect(kubeconfig=await node.grant())
    async with kube:
        yield kube


@pytest.fixture
async def following(agent_kube: Kube, node: Node) -> AsyncIterator[OwnMachine]:
    """The handle with its watch running and its first list taken."""
    own = handle(agent_kube, node)
    stopping = asyncio.Event()
    task = asyncio.create_task(own.run(stopping))
    try:
        await asyncio.wait_for(own.objects.synced.wait(), PATIENCE)
        yield own
    finally:
        stopping.set()
        await task


async def until(own: OwnMachine, holds: Callable[[], bool]) -> None:
    """Returns once ``holds()`` is true, re-checked on every accepted change."""
    async with asyncio.timeout(PATIENCE):
        while not holds():
            await own.moved_from(own.version)


class Retries(logging.Handler):
    """Sets ``reached`` once ``wanted`` retries of a write have been logged (the loop's own thread logs)."""

    def __init__(self, wanted: int) -> None:
        super().__init__(logging.WARNING)
        self.wanted, self.seen = wanted, 0
        self.reached = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "retrying in" in record.getMessage():
            self.seen += 1
            if self.seen >= self.wanted:
                self.reached.set()


def logged(caplog: pytest.LogCaptureFixture, words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if words in r.getMessage()]


async def test_a_writes_answer_is_current_at_once_and_its_own_event_is_no_second_change(
    following: OwnMachine, node: Node,
) -> None:
    own = following
    before = own.version
    written = await own.write({"status": {"agentVersion": "9.9.9"}}, retry=ONCE)
    assert written is not None
    assert written is own.latest
    assert written.status.agent_version == "9.9.9"
    assert written.metadata.resource_version == (await node.get())["metadata"]["resourceVersion"]
    assert own.version == before + 1  # taken from the answer, before any watch event
    # Someone else's change after ours: once it arrives, the watch has delivered our own write's event too.
    await node.patch_spec({"haltAgent": True})
    await until(own, lambda: own.latest is not None and own.latest.spec.halt_agent)
    assert own.version == before + 2
    assert own.failures == 0


@pytest.mark.parametrize("retry", [ONCE, UNTIL_LANDED], ids=["once", "until-landed"])
async def test_a_write_the_server_refuses_for_good_is_tried_once(
    following: OwnMachine, node: Node, caplog: pytest.LogCaptureFixture, retry: Retry,
) -> None:
    caplog.set_level(logging.WARNING, logger="agent.adapters.followed")
    before = following.latest
    assert await following.write({"status": {"state": "Exploded"}}, retry=retry) is None
    assert len(logged(caplog, "status write failed, giving up for now: 422")) == 1
    assert logged(caplog, "retrying in") == []
    assert following.latest == before
    assert following.failures == 1
    assert status(await node.get()).get("state") != "Exploded"


async def test_a_refusal_for_now_is_retried_as_the_policy_allows_and_lands_once_it_is_gone(
    agent_kube: Kube, node: Node, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="agent.adapters.followed")
    # A client whose account may not write yet: the server answers 403, which a grant can cure.
    kube = await connect(kubeconfig=await node.kube_api.service_account_kubeconfig(node.namespace, "late"))
    async with kube:
        own = handle(kube, node)
        assert await own.write({"status": {"agentVersion": "1"}}, retry=Retry(2)) is None
        assert len(logged(caplog, "retrying in")) == 1
        assert len(logged(caplog, "giving up for now: 403")) == 1
        assert own.failures == 1
        retried = Retries(wanted=3)  # refused again, and again: it keeps trying
        logging.getLogger("agent.adapters.followed").addHandler(retried)
        try:
            landing = asyncio.create_task(own.write({"status": {"agentVersion": "2"}}, retry=UNTIL_LANDED))
            await asyncio.wait_for(retried.reached.wait(), PATIENCE)
        finally:
            logging.getLogger("agent.adapters.followed").removeHandler(retried)
        await node.allow("late", [{"apiGroups": ["lcm.mirantis.com"], "resources": ["lcmmachines/status"],
                                   "resourceNames": [node.name], "verbs": ["patch"]}])
        written = await asyncio.wait_for(landing, PATIENCE)
    assert written is not None
    assert written.status.agent_version == "2"
    assert own.latest is written
    assert own.failures == 0
    assert status(await node.get())["agentVersion"] == "2"


async def test_a_fresh_read_is_the_newest_version_without_waiting_for_the_watch(
    agent_kube: Kube, node: Node,
) -> None:
    own = handle(agent_kube, node)  # its watch is not running: nothing but the read can bring news
    assert own.latest is None
    await node.patch_spec({"haltAgent": True})
    machine = await own.reread()
    assert machine is not None
    assert machine.spec.halt_agent
    assert own.latest is machine
    assert own.version == 1
