"""The reconciler process (``lcm-agent reconcile``): converge this node to its desired state once, and exit.

As UCP's reconciler: the agent starts it only when a check found drift, it runs component by component in
the fixed order of ``agent.decisions.drift.ORDER``, looks afresh before each (converging the engine changes
what can be seen of the rest), acts on a drifted component, waits until the component's own check passes,
and stops at the first component that does not converge. It writes a JSON report and exits 0 only when
every component converged; the agent reads the report back. It never talks to Kubernetes: the join token
it may need comes from the agent on stdin (``--stdin-secrets``), never argv, environment or disk.

Role, with only the local engine socket: a worker cannot promote itself, so a demoted manager leaves and
joins again with the manager token, then (a manager now) removes the down entry it left behind. A manager
that should be a worker demotes itself. Worker entries left behind by a leave stay (only a manager could
remove them) until the planner's ``swarm-remove`` or an operator does.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from agent.adapters import engine_ops
from agent.adapters.atomic import write_json
from agent.adapters.engine_access import EngineAccess
from agent.adapters.engine_checks import observe
from agent.adapters.engine_ops import Engine, EngineOpError
from agent.api.desired import ComponentReport, DesiredState, DesiredStateError, Observed, ReconcileReport
from agent.decisions.drift import ORDER, Component, Drift, check, drift, labels_in_config, unchecked
from agent.decisions.reconcile_runs import EXIT_CONVERGED
from agent.kits.timestamps import rfc3339
from agent.reconciler.arguments import add_arguments

log = logging.getLogger(__name__)

EXIT_NOT_CONVERGED = 1
EXIT_BAD_INPUT = 2
SETTLE_TIMEOUT = 60.0
"""Seconds a component may take to show converged after its action (an engine start, a join)."""
PENDING_GRACE = 10.0
"""Seconds a ``pending`` swarm membership gets to become active by itself before the node leaves."""
POLL = 0.25


@dataclass(frozen=True)
class JoinToken:
    """The token for the desired role, or why the agent could not give one. Prints as ``***``."""

    value: str = field(default="", repr=False)
    error: str = "the agent gave no join token"

    def get(self) -> str:
        if not self.value:
            raise EngineOpError(f"cannot join: {self.error}")
        return self.value

    @classmethod
    def from_stdin(cls, stream: TextIO) -> JoinToken:
        """``{"joinToken": ..., "joinTokenError": ...}`` as the agent writes it."""
        raw = json.loads(stream.read() or "{}")
        return cls(value=str(raw.get("joinToken") or ""), error=str(raw.get("joinTokenError") or cls.error))


@dataclass
class Reconciler:
    """One run of the reconciler against the local engine."""

    desired: DesiredState
    access: EngineAccess
    token: JoinToken
    _left: str = ""
    """The node's swarm ID before this run made it leave: its entry is stale once it has rejoined."""

    def run(self) -> ReconcileReport:
        started = datetime.now(UTC)
        reports: list[ComponentReport] = []
        for component in ORDER:
            if any(r.outcome == "failed" for r in reports):
                reports.append(ComponentReport(name=component, outcome="not-run"))
                continue
            reports.append(self._step(component))
            log.info("%s: %s%s", component, reports[-1].outcome,
                     f" ({reports[-1].error})" if reports[-1].error else "")
        converged = all(r.outcome in ("ok", "converged") for r in reports)
        return ReconcileReport(started=rfc3339(started), finished=rfc3339(datetime.now(UTC)),
                               components=tuple(reports), converged=converged)

    def _step(self, component: Component) -> ComponentReport:
        observed = observe(self.access)
        if component not in ("engine", "config") and not observed.engine_running:
            return ComponentReport(name=component, outcome="failed",
                                   error=f"the engine stopped answering ({observed.engine_error})")
        found = check(component).requires_reconcile(self.desired, observed)
        if found is not None and observed.swarm_state == "pending" and component == "membership":
            found = self._pending_settles()
        if found is None:
            return ComponentReport(name=component, outcome="ok")
        log.info("%s drifted: %s; %s", component, found.reason, found.action)
        try:
            self._act(found, observed)
            self._settle(component)
            note = self._after(found)
        except EngineOpError as exc:
            return ComponentReport(name=component, drift=found.reason, action=found.action, outcome="failed",
                                   error=self._redact(str(exc)))
        return ComponentReport(name=component, drift=found.reason, action=found.action + note,
                               outcome="converged")

    def _pending_settles(self) -> Drift | None:
        """A node reconnecting to its managers (just after an engine start) is ``pending`` for a moment:
        give it ``PENDING_GRACE`` before taking it for stuck and making it leave."""
        try:
            self._settle("membership", PENDING_GRACE)
        except EngineOpError:
            return check("membership").requires_reconcile(self.desired, observe(self.access))
        return None

    def _act(self, found: Drift, observed: Observed) -> None:
        """Carry out the drift's action."""
        action, access, membership = found.action, self.access, self.desired.membership
        if action in ("restore-config-and-start", "restore-config-reload", "restore-config-restart"):
            engine_ops.write_config(access.config_path, self._recorded_config())
        if action in ("start-engine", "restore-config-and-start"):
            engine_ops.service(access, "start")
        elif action == "restore-config-reload":
            engine_ops.service(access, "reload")
        elif action == "restore-config-restart":
            engine_ops.service(access, "restart")
        elif action == "reload-labels":
            labels = self.desired.labels.values if self.desired.labels is not None else {}
            try:
                content = labels_in_config(observed.config_content, labels)
            except ValueError as exc:
                raise EngineOpError(str(exc)) from None
            engine_ops.write_config(access.config_path, content)
            engine_ops.service(access, "reload")
        elif action == "recreate":
            with Engine(access) as engine:
                for want in self.desired.containers:
                    if want.name in found.containers:
                        engine.recreate(want)
        elif membership is not None:
            with Engine(access) as engine:
                if action == "demote":
                    engine.demote(observed.node_id)
                else:
                    if action in ("leave-and-join", "rejoin-as-manager"):
                        self._left = observed.node_id
                        engine.leave()
                    engine.join(membership, self.token.get(), self._join_addresses(observed))

    def _after(self, found: Drift) -> str:
        """After a manager (re)joined: drop the down entries it left behind, best effort (the node itself
        has converged; a stale entry is only clutter in ``docker node ls``)."""
        membership = self.desired.membership
        if membership is None or membership.role != "manager" or found.action not in (
                "join", "leave-and-join", "rejoin-as-manager"):
            return ""
        observed = observe(self.access)
        try:
            with Engine(self.access) as engine:
                removed = engine.remove_stale_entries(observed.node_id, membership.advertise_address,
                                                      previous=self._left)
        except EngineOpError as exc:
            return f"; stale node entry left: {exc}"
        return f"; removed stale node entries {', '.join(removed)}" if removed else ""

    def _join_addresses(self, observed: Observed) -> tuple[str, ...]:
        """The desired managers, then those the engine knew, never this node itself."""
        membership = self.desired.membership
        assert membership is not None
        own = membership.advertise_address
        candidates = [*membership.manager_addresses, *observed.remote_managers]
        addresses = tuple(dict.fromkeys(a for a in candidates if a and a.rsplit(":", 1)[0] != own))
        if not addresses:
            raise EngineOpError("no other manager to join through: the recorded managers are this node only")
        return addresses

    def _recorded_config(self) -> str:
        if self.desired.config is None:
            raise EngineOpError("no daemon.json was recorded")
        return self.desired.config.content

    def _settle(self, component: Component, timeout: float = SETTLE_TIMEOUT) -> None:
        """Wait until the component's check passes; raise with the last drift when it does not in time."""
        deadline = time.monotonic() + timeout
        while True:
            observed = observe(self.access)
            still = check(component).requires_reconcile(self.desired, observed)
            if still is None:
                return
            if time.monotonic() >= deadline:
                raise EngineOpError(f"still drifted after {timeout:g}s: {still.reason}")
            time.sleep(POLL)

    def _redact(self, text: str) -> str:
        return text.replace(self.token.value, "***") if self.token.value else text


def describe(desired: DesiredState, observed: Observed) -> tuple[str, bool]:
    """The dry run's text (one line per drifted component) and whether anything drifted."""
    drifts = drift(desired, observed)
    if not drifts:
        return "no drift: the node matches its desired state\n", False
    lines = [f"{d.component}: {d.reason} -> {d.action}" for d in drifts]
    lines += [f"{c}: not checked while an earlier component drifts" for c in unchecked(drifts)]
    return "\n".join(lines) + "\n", True


def load_desired(path: Path) -> DesiredState:
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DesiredStateError(f"cannot read the desired state {path}: {exc}") from None
    return DesiredState.from_json(raw)


def main(args: argparse.Namespace) -> int:
    """``lcm-agent reconcile``: the exit code is the outcome (0 converged or no drift, 1 not, 2 bad input).
    A dry run changes nothing and prints the drift it sees."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    access = EngineAccess(host=args.docker_host, config_path=args.docker_config,
                          service_manager=args.service_manager, docker_service=args.docker_service,
                          docker_unit=args.docker_unit)
    try:
        desired = load_desired(args.desired)
        token = JoinToken.from_stdin(sys.stdin) if args.stdin_secrets else JoinToken()
    except (DesiredStateError, ValueError) as exc:
        print(f"lcm-agent reconcile: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.dry_run:
        text, drifted = describe(desired, observe(access))
        sys.stdout.write(text)
        return EXIT_NOT_CONVERGED if drifted else EXIT_CONVERGED
    report = Reconciler(desired, access, token).run()
    if args.report is not None:
        write_json(args.report, report.to_json())
    return EXIT_CONVERGED if report.converged else EXIT_NOT_CONVERGED


if __name__ == "__main__":
    # How the agent starts it: ``lcm-agent reconcile`` runs this same ``main``, but its entry point imports
    # the whole daemon (seconds on a busy node), and every second of start-up delays the fix.
    _parser = argparse.ArgumentParser(prog="lcm-agent reconcile")
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))
