"""``reboot_step``: what the agent does about ``spec.rebootRequired``, from the object and its journal."""

from __future__ import annotations

from typing import Any

import pytest

from agent.api.models import LCMMachine
from agent.api.reboot_mark import RebootMark
from agent.decisions.hashing import item_hash
from agent.decisions.rebooting import (
    Answer,
    Back,
    Clear,
    Failed,
    Here,
    Nothing,
    Reboot,
    RebootStep,
    reboot_step,
)

ITEM = {"runner": "bash", "name": "a", "version": "1", "phase": "deploy"}
ASKED = "2026-01-01T00:00:00Z"
HERE = Here("boot-2", "run-2")


def _machine(*, asked: bool = True, done: bool = True, halted: bool = False,
             reboot: dict[str, Any] | None = None) -> LCMMachine:
    raw: dict[str, Any] = {
        "apiVersion": "lcm.mirantis.com/v1alpha1", "kind": "LCMMachine", "metadata": {"name": "m"},
        "spec": {"type": "worker", "lcmType": "ucp", "stateItems": [ITEM], "rebootRequired": asked,
                 "haltAgent": halted},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}}
    if done:
        digest = item_hash(LCMMachine.from_raw(raw).spec.state_items[0], "")
        raw["status"]["stateItemStatuses"] = {"a": {"hash": digest, "exitCode": 0}}
    if reboot is not None:
        raw["status"]["reboot"] = reboot
    return LCMMachine.from_raw(raw)


def _mark(boot: str = "boot-1", run: str = "run-1", requested: str = ASKED, failed: str = "") -> RebootMark:
    return RebootMark(requested, boot, run, failed)


ANSWERED = {"requestedAt": ASKED, "completed": False}


@pytest.mark.parametrize(("machine", "mark", "here", "step"), [
    (_machine(asked=False), None, HERE, Nothing("no reboot asked")),
    (_machine(asked=False, reboot={**ANSWERED, "completed": True}), _mark(), HERE, Clear()),
    (_machine(asked=False), _mark(), HERE, Clear()),
    (_machine(), None, HERE, Answer()),
    (_machine(done=False), None, HERE, Nothing("a reboot is asked: waiting for the items to be done")),
    (_machine(halted=True), None, HERE, Nothing("a reboot is asked: waiting for the items to be done")),
    (_machine(reboot=ANSWERED), None, HERE, Reboot(ASKED)),
    (_machine(reboot=ANSWERED), _mark(requested="2025-01-01T00:00:00Z"), HERE, Reboot(ASKED)),
    (_machine(reboot=ANSWERED), _mark(), HERE, Back()),
    (_machine(reboot=ANSWERED), _mark("boot-2", "run-2"), HERE, Nothing(
        "rebooting: waiting for the machine to go down")),
    (_machine(reboot=ANSWERED), _mark("boot-2", "run-1"), HERE, Failed(
        "the machine did not reboot: boot boot-2 is the one the reboot was issued in")),
    (_machine(reboot=ANSWERED), _mark("boot-2", "run-2"), Here("boot-2", "run-2", restart_is_reboot=True),
     Back()),
    (_machine(reboot=ANSWERED), _mark(failed="exit code 1"), HERE, Failed("exit code 1")),
    (_machine(reboot={**ANSWERED, "errorMessage": "exit code 1"}), _mark(failed="exit code 1"), HERE,
     Nothing("the reboot failed")),
    (_machine(reboot={**ANSWERED, "errorMessage": "did not reboot"}), None, HERE,
     Nothing("the reboot failed")),
    (_machine(reboot={**ANSWERED, "completed": True}), _mark(), HERE, Nothing("rebooted")),
], ids=[
    "not asked", "no longer asked: clear the answer", "no longer asked: clear a mark", "asked: answer",
    "items not done", "agent halted", "answered: reboot", "a mark of another request: reboot",
    "a mark from another boot: back", "the mark of this very run: going down",
    "this boot, another run: it did not reboot", "an engine restart is the reboot",
    "the command failed: say so", "the failure said", "a failure said: never again", "completed",
])
def test_reboot_step(machine: LCMMachine, mark: RebootMark | None, here: Here, step: RebootStep) -> None:
    assert reboot_step(machine, mark, here) == step
