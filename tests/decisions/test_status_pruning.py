"""What the status keeps when the spec moves on: no slot outlives its item, and ``release`` says which
release the machine was last Ready with (the Release column of ``kubectl get lcmm``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agent.api.models import LCMMachine
from agent.decisions.hashing import item_hash
from agent.decisions.reporting import catch_up_patch, finished_slot, slots_patch, summary_patch

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
UCP = "1.0.0"
"""The stack version of the spec (Mirantis' ``ucp`` machines are Ready only once the status reports it)."""


def item(name: str) -> dict[str, Any]:
    return {"runner": "bash", "name": name, "version": "1", "phase": "deploy", "params": {"script": "true"}}


def machine(names: list[str], slots: list[str], *, on: str = "", **status: Any) -> LCMMachine:
    def done(name: str) -> dict[str, Any]:
        return {"hash": digest(name), "exitCode": 0, "attempt": 1}

    return LCMMachine.from_raw({
        "metadata": {"name": "m1", "generation": 4},
        "spec": {"type": "worker", "lcmType": "ucp", "components": {"ucpVersion": UCP}, "release": on,
                 "stateItems": [item(n) for n in names]},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.5"}],
                   "stateItemStatuses": {n: done(n) for n in slots}, **status}})


def digest(name: str) -> str:
    return item_hash(LCMMachine.from_raw({"spec": {"stateItems": [item(name)]}}).spec.state_items[0], "")


def outcome(name: str) -> dict[str, Any]:
    slot = finished_slot(digest(name), 1, exit_code=0, result="success", message="", started_at=None, now=NOW)
    return dict(slot)


def test_an_item_write_removes_the_slots_of_items_gone_from_the_spec() -> None:
    churned = [f"extra-{n}" for n in range(3)]
    m = machine(["a", "b"], ["a", *churned])
    written = slots_patch(m, {"b": outcome("b")})["status"]
    assert written["stateItemStatuses"] == {**dict.fromkeys(churned), "b": outcome("b")}
    assert (written["state"], written["progress"]) == ("Ready", "2/2")


def test_the_outcome_of_an_item_removed_while_it_ran_is_not_written() -> None:
    m = machine(["a"], ["a"])
    written = slots_patch(m, {"gone": outcome("gone")})["status"]
    assert written["stateItemStatuses"] == {}
    assert (written["state"], written["progress"]) == ("Ready", "1/1")


def test_a_spec_that_only_lost_items_gets_its_status_caught_up() -> None:
    """2,000 items added and done, then the original ones restored: nothing runs, yet the status must drop
    the slots and stop showing 2002/2002."""
    churned = [f"extra-{n}" for n in range(2000)]
    m = machine(["a", "b"], ["a", "b", *churned], state="Ready", progress="2002/2002")
    patch = catch_up_patch(m)
    assert patch is not None
    written = patch["status"]
    assert written["stateItemStatuses"] == dict.fromkeys(churned)
    assert (written["state"], written["progress"], written["observedGeneration"]) == ("Ready", "2/2", 4)


def test_a_status_up_to_date_needs_no_catch_up() -> None:
    assert catch_up_patch(machine(["a", "b"], ["a", "b"], state="Ready", progress="2/2",
                                  components={"ucpVersion": UCP})) is None
    assert catch_up_patch(machine(["a", "b"], ["a"], state="Deploy", progress="1/2")) is None


def test_a_stale_progress_is_caught_up_even_without_slots_to_remove() -> None:
    """An item removed before it ever ran has no slot; the state and progress still moved."""
    patch = catch_up_patch(machine(["a"], ["a"], state="Deploy", progress="1/2"))
    assert patch is not None
    assert (patch["status"]["state"], patch["status"]["progress"]) == ("Ready", "1/1")
    assert "stateItemStatuses" not in patch["status"]


def test_release_is_written_when_the_machine_becomes_ready_on_it() -> None:
    m = machine(["a", "b"], ["a"], on="swarm-1-1-0")
    assert "release" not in slots_patch(m, {"a": outcome("a")})["status"]
    assert slots_patch(m, {"b": outcome("b")})["status"]["release"] == "swarm-1-1-0"


def test_release_stays_the_last_ready_one_while_the_next_rolls_out() -> None:
    upgrading = machine(["a", "b"], ["a"], on="swarm-1-2-0", state="Deploy", progress="1/2",
                        release="swarm-1-1-0")
    assert "release" not in summary_patch(upgrading, {"agentVersion": "0.2.0"})["status"]
    assert catch_up_patch(upgrading) is None


def test_a_ready_machine_without_release_gets_it() -> None:
    patch = catch_up_patch(machine(["a"], ["a"], on="swarm-1-1-0", state="Ready", progress="1/1"))
    assert patch is not None
    assert patch["status"]["release"] == "swarm-1-1-0"
