"""The agent's next step, from its LCMMachine, its journal and the clock: a table of situations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.api.models import EXIT_CODE_RUNNING, InvalidObjectError, LCMMachine, StateItem
from agent.decisions.execution import (
    Idle,
    LocalRecord,
    Rehash,
    Report,
    Run,
    Wait,
    handover,
    next_step,
    outcome_write,
    rehash_patch,
)
from agent.decisions.hashing import item_hash, legacy_item_hash
from agent.decisions.reporting import (
    finished_patch,
    finished_slot,
    slots_patch,
    started_patch,
    started_slot,
    summary_patch,
    with_slots,
)
from agent.kits.backoff import Backoff
from agent.kits.timestamps import rfc3339

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
BACKOFF = Backoff(base=10.0, cap=600.0)
NOTHING = LocalRecord(finished={})

ITEMS = [
    {"runner": "ansible", "name": name, "version": "1", "phase": phase, "params": {"playbook": f"{name}.yml"}}
    for name, phase in (("preflight", "prepare"), ("engine", "deploy"), ("labels", "reconfigure"))
]


def machine(
    *, items: list[dict[str, Any]] | None = None, statuses: dict[str, dict[str, Any]] | None = None,
    ip: bool = True, overwrites: dict[str, dict[str, str]] | None = None, halt: bool = False,
    **extra: Any,
) -> LCMMachine:
    spec: dict[str, Any] = {"type": "worker", "lcmType": "ucp", "haltAgent": halt,
                            "stateItems": ITEMS if items is None else items, **extra}
    if overwrites:
        spec["stateItemsOverwrites"] = overwrites
    status: dict[str, Any] = {"stateItemStatuses": statuses or {}}
    if ip:
        status["addresses"] = [{"type": "InternalIP", "address": "10.0.0.5"}]
    return LCMMachine.from_raw({"metadata": {"name": "m1", "generation": 3}, "spec": spec, "status": status})


def h(name: str) -> str:
    return item_hash(_spec_item(name), "")


def legacy(name: str, overwrites: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
    """A slot done under lcm-agent's old hash."""
    return {"hash": legacy_item_hash(_spec_item(name), overwrites or {}), "exitCode": 0, "attempt": 1}


def _spec_item(name: str) -> StateItem:
    return next(i for i in machine().spec.state_items if i.name == name)


def done(name: str) -> dict[str, Any]:
    return {"hash": h(name), "exitCode": 0, "attempt": 1}


def failed(name: str, attempt: int, seconds_ago: float) -> dict[str, Any]:
    finished = rfc3339(NOW - timedelta(seconds=seconds_ago))
    return {"hash": h(name), "exitCode": 2, "attempt": attempt, "finishedAt": finished}


@pytest.mark.parametrize(
    ("m", "local", "expected"),
    [
        pytest.param(machine(halt=True), NOTHING, Idle, id="halted"),
        pytest.param(machine(ip=False), NOTHING, Idle, id="unregistered"),
        pytest.param(machine(items=[]), NOTHING, Idle, id="no-items"),
        pytest.param(machine(statuses={n: done(n) for n in ("preflight", "engine", "labels")}), NOTHING, Idle,
                     id="all-done"),
        pytest.param(machine(), NOTHING, ("run", "preflight", 1), id="first-item"),
        pytest.param(machine(statuses={"preflight": done("preflight")}), NOTHING, ("run", "engine", 1),
                     id="next-phase"),
        pytest.param(machine(statuses={"preflight": {"hash": "old", "exitCode": 0, "attempt": 4}}), NOTHING,
                     ("run", "preflight", 1), id="changed-item-reruns-from-attempt-1"),
        pytest.param(machine(statuses={"preflight": {"hash": h("preflight"), "exitCode": EXIT_CODE_RUNNING,
                                                     "attempt": 1}}),
                     NOTHING, ("run", "preflight", 2), id="half-run-in-status-runs-again"),
        pytest.param(machine(), LocalRecord({}, ("preflight", h("preflight"), 1)), ("run", "preflight", 2),
                     id="half-run-in-journal-runs-again"),
        pytest.param(machine(), LocalRecord({"preflight": (h("preflight"), 0)}), ("report", "preflight", 1),
                     id="finished-but-unreported"),
        pytest.param(machine(), LocalRecord({"preflight": (h("preflight"), 1)}), ("run", "preflight", 1),
                     id="journal-failure-is-not-done"),
        pytest.param(machine(), LocalRecord({"preflight": ("other", 0)}), ("run", "preflight", 1),
                     id="journal-done-for-another-hash"),
        pytest.param(machine(statuses={"preflight": failed("preflight", 1, seconds_ago=0.0)}), NOTHING,
                     ("wait", "preflight", 2), id="failed-just-now-waits"),
        pytest.param(machine(statuses={"preflight": failed("preflight", 1, seconds_ago=11.0)}), NOTHING,
                     ("run", "preflight", 2), id="failed-window-passed-retries"),
        pytest.param(machine(statuses={"preflight": failed("preflight", 7, seconds_ago=601.0)}), NOTHING,
                     ("run", "preflight", 8), id="backoff-is-capped"),
        pytest.param(machine(statuses={"preflight": {"hash": h("preflight"), "exitCode": 1, "attempt": 1}}),
                     NOTHING, ("run", "preflight", 2), id="failed-without-finish-time-retries"),
        pytest.param(machine(statuses={"preflight": done("preflight"), "labels": done("labels")}), NOTHING,
                     ("run", "engine", 1), id="later-phase-done-earlier-not"),
        pytest.param(machine(statuses={"preflight": legacy("preflight")}), NOTHING, Rehash,
                     id="done-under-the-old-hash-is-rehashed"),
        pytest.param(machine(statuses={"preflight": legacy("preflight")}, lcmType=""), NOTHING,
                     ("run", "engine", 1), id="old-scheduler-old-hash-counts-as-done"),
        pytest.param(machine(statuses={"preflight": {**legacy("preflight"), "exitCode": 1}}),
                     NOTHING, ("run", "preflight", 1), id="failed-under-the-old-hash-runs"),
        pytest.param(machine(agentConfig={"version": "latest"}), NOTHING, Idle,
                     id="agent-version-not-semver"),
        pytest.param(machine(items=[ITEMS[0], ITEMS[0]]), NOTHING, Idle, id="duplicate-item-names"),
    ],
)
def test_next_step(m: LCMMachine, local: LocalRecord, expected: object) -> None:
    step = next_step(m, local, NOW, BACKOFF)
    if isinstance(expected, type):
        assert isinstance(step, expected)
        return
    kind, name, attempt = expected  # type: ignore[misc]
    assert {"run": Run, "report": Report, "wait": Wait}[kind] is type(step)
    assert (step.item.name, step.attempt) == (name, attempt)  # type: ignore[union-attr]


def test_run_carries_effective_params_and_the_items_own_hash() -> None:
    """Overwrites reach the runner; the hash is Mirantis', of the item alone."""
    over = {"preflight": {"min_memory_mb": "2048"}}
    step = next_step(machine(overwrites=over), NOTHING, NOW, BACKOFF)
    assert isinstance(step, Run)
    assert step.params == {"playbook": "preflight.yml", "min_memory_mb": "2048"}
    assert step.hash == h("preflight")


def test_a_rehash_rewrites_only_the_hashes_of_slots_done_under_the_old_one() -> None:
    over = {"engine": {"mode": "x"}}
    statuses = {"preflight": legacy("preflight"), "engine": legacy("engine", over)}
    m = machine(overwrites=over, statuses=statuses)
    step = next_step(m, NOTHING, NOW, BACKOFF)
    assert isinstance(step, Rehash)
    assert step.hashes == {"preflight": h("preflight"), "engine": h("engine")}
    slots = rehash_patch(m, step)["status"]["stateItemStatuses"]
    assert slots == {"preflight": {"hash": h("preflight")}, "engine": {"hash": h("engine")}}


def test_an_agent_version_mirantis_cannot_parse_runs_nothing_and_says_why() -> None:
    step = next_step(machine(agentConfig={"version": "latest"}), NOTHING, NOW, BACKOFF)
    assert isinstance(step, Idle)
    assert "spec.agentConfig.version" in step.reason


def test_wait_ends_within_the_backoff_window_and_is_stable() -> None:
    m = machine(statuses={"preflight": failed("preflight", 3, seconds_ago=0.0)})
    first, again = next_step(m, NOTHING, NOW, BACKOFF), next_step(m, NOTHING, NOW, BACKOFF)
    assert isinstance(first, Wait)
    assert first == again  # pure: the same inputs give the same retry time
    assert NOW <= first.until <= NOW + timedelta(seconds=BACKOFF.window(2))


def test_status_patches_carry_state_progress_and_generation() -> None:
    m = machine(statuses={"preflight": done("preflight")})
    started = started_patch(m, "engine", h("engine"), 1, NOW)["status"]
    assert started["stateItemStatuses"]["engine"]["exitCode"] == EXIT_CODE_RUNNING
    assert (started["state"], started["progress"], started["observedGeneration"]) == ("Deploy", "1/3", 3)
    finished = finished_patch(m, "engine", h("engine"), 1, exit_code=0, result="success", message="",
                              started_at=NOW, now=NOW)["status"]
    assert (finished["state"], finished["progress"]) == ("Reconfigure", "2/3")
    assert finished["stateItemStatuses"]["engine"]["startedAt"] == "2026-11-21T12:00:00Z"


def test_long_failure_messages_keep_their_end() -> None:
    message = "x" * 10_000 + "TASK [join] failed"
    patch = finished_patch(machine(), "preflight", h("preflight"), 1, exit_code=2, result="failed",
                           message=message, started_at=None, now=NOW)
    kept = patch["status"]["stateItemStatuses"]["preflight"]["message"]
    assert len(kept) == 4096
    assert kept.endswith("TASK [join] failed")


def test_registration_makes_a_machine_pending() -> None:
    m = machine(items=[], ip=False)
    patch = summary_patch(m, {"addresses": [{"type": "InternalIP", "address": "10.0.0.9"}]})
    assert patch["status"]["state"] == "Pending"


# Generated LCMMachine bodies: whatever reaches the agent, the decision either refuses the body with a clear
# InvalidObjectError at parse time or returns a step; it never crashes.
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=8))
_json = st.recursive(
    _scalar, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
    max_leaves=12)
_item = st.fixed_dictionaries(
    {"runner": st.sampled_from(["ansible", "bash", "downloader", "x"]), "name": st.text(max_size=6),
     "version": st.text(max_size=3), "phase": st.sampled_from(["prepare", "deploy", "reconfigure", "y"]),
     "params": st.dictionaries(st.text(max_size=5), st.one_of(st.text(max_size=5), _scalar), max_size=3)})
_status_entry = st.fixed_dictionaries(
    {"hash": st.text(max_size=5), "exitCode": st.one_of(st.integers(-2, 3), _scalar),
     "attempt": st.integers(-1, 5), "finishedAt": st.one_of(st.none(), st.text(max_size=25),
                                                          st.just("2026-11-21T11:59:00Z"))})


@settings(max_examples=300, deadline=None)
@given(
    items=st.lists(_item, max_size=4),
    statuses=st.dictionaries(st.text(max_size=6), _status_entry, max_size=3),
    ip=st.booleans(), halt=st.one_of(st.booleans(), _scalar), extra=_json,
)
def test_generated_bodies_never_crash_the_decision(
    items: list[dict[str, Any]], statuses: dict[str, Any], ip: bool, halt: Any, extra: Any,
) -> None:
    body = {
        "metadata": {"name": "m"},
        "spec": {"stateItems": items, "haltAgent": halt, "extraField": extra},
        "status": {"stateItemStatuses": statuses,
                   "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}] if ip else []},
    }
    try:
        m = LCMMachine.from_raw(body)
    except InvalidObjectError as exc:
        causes = exc.causes
        assert causes  # refused, naming the offending fields
        return
    assert isinstance(next_step(m, NOTHING, NOW, BACKOFF), Idle | Run | Report | Wait)


def test_every_status_patch_is_valid_for_the_crd() -> None:
    """The API server validates each write against the CRD: a patch the schema refuses would never land."""
    from agent.api.crds import load_crds
    from testbed.sim.schema import StructuralSchema

    crd = next(c for c in load_crds() if c["spec"]["names"]["kind"] == "LCMMachine")
    schema = StructuralSchema(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    m = machine(statuses={"preflight": done("preflight")})
    patches = [
        started_patch(m, "engine", h("engine"), 1, NOW),
        finished_patch(m, "engine", h("engine"), 1, exit_code=2, result="failed", message="TASK [x] failed",
                       started_at=NOW, now=NOW),
        summary_patch(m, {"addresses": [{"type": "InternalIP", "address": "10.0.0.9"}],
                          "agentVersion": "0.1.0"}),
        slots_patch(m, {"engine": finished_slot(h("engine"), 1, exit_code=0, result="success", message="",
                                                started_at=NOW, now=NOW),
                        "labels": started_slot(h("labels"), 1, NOW)}),
    ]
    for patch in patches:
        # A merge patch's nulls delete keys; what is stored is the patch without them.
        status = dict(patch["status"])
        status["stateItemStatuses"] = {
            name: {k: v for k, v in slot.items() if v is not None}
            for name, slot in status.get("stateItemStatuses", {}).items()}
        body = {"apiVersion": "lcm.mirantis.com/v1alpha1", "kind": "LCMMachine", "metadata": {"name": "m1"},
                "spec": {"type": "worker"}, "status": status}
        assert schema.validate(body) == []


def test_handover_starts_the_next_item_in_the_write_of_the_outcome() -> None:
    """A finished item's outcome and the next item's start go out in one write, which says where the
    machine is after both: the next phase, one item done."""
    m = machine()
    outcome = finished_slot(h("preflight"), 1, exit_code=0, result="success", message="", started_at=NOW,
                            now=NOW)
    local = LocalRecord(finished={"preflight": (h("preflight"), 0)})
    written, following = outcome_write(m, "preflight", outcome, local, NOW, BACKOFF)
    assert isinstance(following, Run)
    assert (following.item.name, following.attempt) == ("engine", 1)
    patch = written["status"]
    assert (patch["state"], patch["progress"]) == ("Deploy", "1/3")
    assert patch["stateItemStatuses"]["engine"]["exitCode"] == EXIT_CODE_RUNNING
    assert patch["stateItemStatuses"]["preflight"]["exitCode"] == 0
    # Not chaining (the agent is stopping, or host facts are due): the outcome goes out alone.
    alone, nothing = outcome_write(m, "preflight", outcome, local, NOW, BACKOFF, chain=False)
    assert nothing is None
    assert set(alone["status"]["stateItemStatuses"]) == {"preflight"}
    assert alone["status"]["state"] == "Deploy"


@pytest.mark.parametrize(
    ("statuses", "finished", "exit_code"),
    [
        pytest.param({}, "preflight", 2, id="failed: its retry waits"),
        pytest.param({"preflight": done("preflight"), "engine": done("engine")}, "labels", 0, id="last item"),
    ],
)
def test_no_handover_when_nothing_runs_straight_away(
    statuses: dict[str, dict[str, Any]], finished: str, exit_code: int,
) -> None:
    m = machine(statuses=statuses)
    outcome = {finished: finished_slot(h(finished), 1, exit_code=exit_code, result="r", message="",
                                       started_at=NOW, now=NOW)}
    local = LocalRecord(finished={finished: (h(finished), exit_code)})
    assert handover(with_slots(m, outcome), finished, local, NOW, BACKOFF) is None


def test_a_retry_never_goes_along_with_the_failure_it_retries() -> None:
    """Once the backoff is over the next step is the same item again; its "started" mark would overwrite
    the failure in the same slot, so the failure is written alone (the scheduler counts failures)."""
    failure = {"preflight": finished_slot(h("preflight"), 1, exit_code=2, result="failed", message="",
                                          started_at=NOW, now=NOW)}
    after = with_slots(machine(), failure)
    local = LocalRecord(finished={"preflight": (h("preflight"), 2)})
    later = NOW + timedelta(hours=1)
    step = next_step(after, local, later, BACKOFF)
    assert isinstance(step, Run)
    assert (step.item.name, step.attempt) == ("preflight", 2)
    assert handover(after, "preflight", local, later, BACKOFF) is None
