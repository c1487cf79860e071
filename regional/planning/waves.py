"""Which upgrades may start now: the canary wave, the failure budget and the maintenance windows.

An upgrade (``spec.release`` names another release than the one every machine is done with) is where a bad
release hurts, so ``spec.rollout`` (docs/api.md) puts three gates in front of each machine's start (the
drain, or the new spec where no drain is needed); what has started always finishes:

- **Canary**: the first ``canaryWorkers`` workers are upgraded first; no other worker starts until that many
  are done with the new release. A failed canary is not done: the rest wait (hold ``Canary``).
- **Failure budget**: a machine the upgrade touched (given the new release, or drained for it) counts as
  failed once an item of its spec failed on it: its last run failed, or it needed more than one run (the
  agent retries by itself; a run that had to be repeated is a failure the operator should see). When the
  failed exceed ``maxFailures`` (a count, or a percentage of the machines touched so far, rounded down),
  nothing more starts (hold ``FailureBudgetSpent``, condition ``FailureBudgetSpent``) until the operator
  accepts them: ``acceptedFailures {release, count}`` for this very release; only failures beyond
  ``count`` count. Accepted failures also stand in for canaries that are not done, so accepting a failed
  canary lets the wave pass.
- **Windows**: nothing starts outside the maintenance windows (hold ``WindowClosed``, naming the next
  opening); the plan is requeued for that instant.

Every count is derived from the objects of this plan: nothing is remembered between plans.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from agent.api.models import EXIT_CODE_RUNNING, LCMCluster, LCMClusterState, RolloutSpec
from agent.decisions.hashing import item_hash
from regional.planning.machines import MachineView
from regional.planning.windows import Windows, windows

SHOWN_FAILED = 5
"""Failed machines named in a message; the rest are counted."""


def failed(v: MachineView) -> bool:
    """An item of the machine's spec failed under its current hash: the last run failed, or it took more than
    one run. Entries that ran once and succeeded (almost all) are answered without hashing."""
    statuses = v.status.state_item_statuses
    version = v.spec.agent_config.version
    for item in v.spec.state_items:
        entry = statuses.get(item.name)
        if entry is None or (entry.exit_code in (0, EXIT_CODE_RUNNING) and entry.attempt <= 1):
            continue
        if entry.hash == item_hash(item, version):
            return True
    return False


def allowance(max_failures: int | str, touched: int) -> int:
    """Failures tolerated among ``touched`` machines: a count as it is, a percentage of them rounded down."""
    if isinstance(max_failures, int):
        return max_failures
    return int(max_failures.removesuffix("%")) * touched // 100


def _names(views: Sequence[MachineView]) -> str:
    shown = ", ".join(v.name for v in views[:SHOWN_FAILED])
    more = len(views) - SHOWN_FAILED
    return shown + (f" and {more} more" if more > 0 else "")


@dataclass
class RolloutGate:
    """The gates of one plan, derived once from the cluster and its machines. Without ``spec.rollout`` (or
    outside an upgrade) every method says go, as before these gates existed."""

    rollout: RolloutSpec
    target: str
    upgrading: bool
    windows: Windows
    now: datetime
    touched: list[MachineView] = field(default_factory=list)
    failed: list[MachineView] = field(default_factory=list)
    canaries_touched: int = 0
    """Workers the upgrade touched so far (this plan's starts included)."""
    canaries_passed: int = 0
    """Workers done with the target release, plus accepted failures standing in for those that are not."""

    @property
    def accepted(self) -> int:
        accepted = self.rollout.accepted_failures
        return accepted.count if accepted is not None and accepted.release == self.target else 0

    @property
    def budget(self) -> int | None:
        """Failures tolerated now; None when the cluster sets no budget."""
        limit = self.rollout.max_failures
        return None if limit is None else allowance(limit, len(self.touched))

    @property
    def budget_spent(self) -> bool:
        budget = self.budget
        return self.upgrading and budget is not None and len(self.failed) - self.accepted > budget

    def failure_message(self) -> str:
        """The ``FailureBudgetSpent`` condition's words: counts, names and what resumes."""
        failed, budget = len(self.failed), self.budget
        text = (f"{failed} of {len(self.touched)} machines the upgrade to {self.target} touched failed"
                f" ({_names(self.failed)})" if failed else f"no failure among {len(self.touched)} machines")
        text += f"; budget {budget}" + (f", {self.accepted} accepted" if self.accepted else "")
        if self.budget_spent:
            text += (f"; nothing more starts until spec.rollout.acceptedFailures is "
                     f"{{release: {self.target}, count: {failed}}}")
        return text

    def window_hold(self) -> tuple[str, str] | None:
        """(reason, message) when no upgrade or reboot may start now because of the windows."""
        if self.windows.open_at(self.now):
            return None
        if self.windows.never_open:
            return "WindowClosed", f"no maintenance window can open: {self.windows.problem}"
        opening = self.windows.next_opening(self.now)
        assert opening is not None  # configured, valid ranges: one opens within a week
        local = opening.astimezone(self.windows.zone).isoformat(timespec="minutes")
        return "WindowClosed", f"outside the maintenance windows; the next opens at {local}"

    def next_opening_in(self) -> float | None:
        """Seconds until the windows open, when they are closed now and will open."""
        if self.windows.open_at(self.now):
            return None
        opening = self.windows.next_opening(self.now)
        return None if opening is None else (opening - self.now).total_seconds()

    def hold(self, v: MachineView) -> tuple[str, str] | None:
        """Why the machine may not start its upgrade now, if anything: (reason, message). Budget first (an
        operator must act), then the windows (time must pass), then the canary wave (others must finish)."""
        if not self.upgrading:
            return self.window_hold()
        if self.budget_spent:
            return "FailureBudgetSpent", (f"too many machines failed the upgrade to {self.target} (the "
                                          "cluster's FailureBudgetSpent condition names them)")
        if (window := self.window_hold()) is not None:
            return window
        canaries = self.rollout.canary_workers
        if not v.control and canaries and self.canaries_passed < canaries <= self.canaries_touched:
            return "Canary", f"the canary wave ({canaries} workers) goes first to {self.target}"
        return None

    def started(self, v: MachineView) -> None:
        """The machine starts its upgrade in this plan: a worker takes a place in the canary wave."""
        if not v.control:
            self.canaries_touched += 1


def _touched(v: MachineView, target: str, drains: Mapping[str, LCMClusterState]) -> bool:
    return v.released and not v.deleting and (v.spec.release == target or v.name in drains)


def rollout_gate(
    cluster: LCMCluster, target: str, views: Sequence[MachineView], drains: Mapping[str, LCMClusterState],
    now: datetime,
) -> RolloutGate:
    """The gates for this plan. An upgrade is under way while the cluster's ``status.release`` (the release
    every machine was last done with) is another than the target: a first deploy has no canary or budget."""
    rollout = cluster.spec.rollout
    applied = cluster.status.release
    gate = RolloutGate(rollout, target, bool(applied) and applied != target, windows(rollout), now)
    if not gate.upgrading or (rollout.max_failures is None and not rollout.canary_workers):
        return gate
    gate.touched = [v for v in views if _touched(v, target, drains)]
    gate.failed = [v for v in gate.touched if failed(v)]
    workers = [v for v in gate.touched if not v.control]
    gate.canaries_touched = len(workers)
    done = sum(1 for v in workers if v.settled and v.spec.release == target)
    failed_names = {v.name for v in gate.failed}
    stand_ins = min(gate.accepted, sum(1 for v in workers if not v.settled and v.name in failed_names))
    gate.canaries_passed = done + stand_ins
    return gate


def gate_conditions(gate: RolloutGate) -> tuple[tuple[str, str, str, str], ...]:
    """The cluster's conditions about its gates, each only while the cluster configures that gate:
    ``FailureBudgetSpent`` (with ``maxFailures``) and ``MaintenanceWindows`` (with ``windows``; False with
    ``NeverOpens`` when no upgrade can ever start: a bad time zone, no days, a zero-length range)."""
    out: list[tuple[str, str, str, str]] = []
    if gate.rollout.max_failures is not None:
        if not gate.upgrading:
            out.append(("FailureBudgetSpent", "False", "NoUpgrade", ""))
        elif gate.budget_spent:
            out.append(("FailureBudgetSpent", "True", "TooManyFailures", gate.failure_message()))
        else:
            out.append(("FailureBudgetSpent", "False", "WithinBudget", gate.failure_message()))
    if gate.windows.configured:
        if gate.windows.never_open:
            message = f"{gate.windows.problem}: no upgrade or reboot can start"
            out.append(("MaintenanceWindows", "False", "NeverOpens", message))
        else:
            message = f"upgrades and reboots start only inside {gate.windows.text}"
            out.append(("MaintenanceWindows", "True", "Valid", message))
    return tuple(out)
