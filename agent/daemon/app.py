"""The daemon's lifecycle: start up, run the root tasks, shut down in steps.

Start: state dir (0700), journal, API client, registration (retried until the API answers), readiness to
systemd. Run: the one handle on the machine's LCMMachine (``OwnMachine``: its watch, and the one write path
that registration and every root task writing the object use), the item worker (which also
re-reports host facts that changed, and reads/publishes swarm join tokens around its items), the
LCMClusterState executor (idle unless the machine is a control machine), the reconciler's checks
(``drift_watch``), the diagnostics bundle of an item flagged stuck (``diagnostics``), the machine's reboot
when the spec asks (``rebooting``), the self-upgrade loop, the API token's renewal (``renewal``, with a token
file), the Prometheus endpoint (``metrics``, on loopback by default) and the watchdog pinger, each guarded: a
root task that ends while the daemon is not stopping is logged and ends the daemon with ``ExitCode.FAILURE``
(systemd restarts it) instead of leaving it half-alive. Stop (``stopping`` set by a signal, or by a test):
no new item starts, the running one finishes or is cancelled after the grace period, its outcome is
journaled, then exit. A forced stop (the task cancelled) still kills the running item's processes before
the daemon exits.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

from agent.adapters import runners, systemd
from agent.adapters.engine_access import EngineAccess
from agent.adapters.exposition import serve_metrics
from agent.adapters.host import collect_host_info
from agent.adapters.journal import Journal
from agent.adapters.kube import Kube, connect
from agent.adapters.runners import leftovers
from agent.adapters.runners.settings import RunnerSettings
from agent.adapters.watching import WatchSettings
from agent.api.execution import EventSink
from agent.api.host_facts import HostFacts
from agent.daemon import rebooting
from agent.daemon.config import AgentSettings, RebootSettings
from agent.daemon.diagnostics import Diagnostics, EvidenceSources
from agent.daemon.drift_watch import ReconcileSink, Reconciling
from agent.daemon.metrics import AgentMetrics, HeldFigures
from agent.daemon.own_machine import OwnMachine
from agent.daemon.rebooting import Rebooting
from agent.daemon.registration import FactsTracker, Identity, RegistrationError, find_or_create, report
from agent.daemon.renewal import RenewalSettings, TokenRenewal
from agent.daemon.self_upgrade import UPGRADE_EXIT_CODE, upgrade_loop
from agent.daemon.swarm_executor import ClusterStateExecutor, ExecutorSettings, one_at_a_time
from agent.daemon.swarm_tokens import SwarmTokens
from agent.daemon.telemetry import Telemetry, fan_out
from agent.daemon.worker import MachineWorker, RunItem, WorkerSettings
from agent.decisions.execution import Run
from agent.decisions.rebooting import Here
from agent.kits.addresses import Address
from agent.kits.backoff import Backoff
from agent.kits.logs import SecretRegistry
from agent.kits.tasks import first_of, guarded, until_stopped

log = logging.getLogger(__name__)


class ExitCode(IntEnum):
    """``lcm-agent run`` exit codes (also in the unit's ``RestartPreventExitStatus``)."""

    OK = 0
    """Stopped on request."""
    FAILURE = 1
    """A root task died unexpectedly; systemd restarts the agent."""
    CONFIG = 2
    """The configuration is invalid or unsafe; restarting cannot help until an operator fixes it."""
    FORCED = 130
    """A second SIGTERM/SIGINT forced the stop without waiting for the running item."""
    UPGRADED = UPGRADE_EXIT_CODE
    """The agent switched itself to a new version and exits so that systemd restarts it into that version."""


@dataclass
class Hooks:
    """What tests replace: how items run, how host facts are read, where progress events go."""

    run_item: RunItem = runners.run_item
    host_info: Callable[[], HostFacts] = collect_host_info
    on_event: EventSink = field(default=lambda event: None)
    on_reconcile: ReconcileSink = field(default=lambda event, data: None)
    here: Callable[[RebootSettings], Here] = rebooting.here
    """This boot and agent process, as the reboot decision sees them."""


async def _end_predecessors_run(journal: Journal, machine: str) -> None:
    """A half-run item in the journal means the agent before this one died mid-item; outside systemd its
    processes may still run. They end before anything else happens, so the re-run never runs beside them."""
    mark = journal.in_progress
    if mark is None:
        return
    ended = await asyncio.to_thread(leftovers.end_run, leftovers.run_mark(machine, mark.item, mark.attempt),
                                    grace=RunnerSettings().grace)
    if ended:
        log.warning("ended %d processes the previous agent left running for its item", len(ended),
                    extra={"machine": machine, "item": mark.item, "attempt": mark.attempt})


async def run_daemon(
    cfg: AgentSettings, stopping: asyncio.Event, hooks: Hooks | None = None, *,
    secrets: SecretRegistry | None = None,
) -> ExitCode:
    """Run until ``stopping`` is set (clean exit) or a root task fails; secrets the daemon learns (swarm join
    tokens) are added to ``secrets``, the log redaction's registry."""
    hooks = hooks or Hooks()
    secrets = secrets or SecretRegistry()
    os.makedirs(cfg.state_dir, mode=0o700, exist_ok=True)
    journal = Journal.load(cfg.state_dir / "journal.json")
    await _end_predecessors_run(journal, cfg.api.machine_name)
    who = Identity(cfg.api.namespace, cfg.api.machine_name, cfg.api.create_if_missing)
    kube = await _client(cfg)
    if kube.credentials is not None:
        kube.credentials.on_token = secrets.add
    async with kube:
        own = OwnMachine(kube, who.namespace, who.name, watch=_watch_settings(cfg),
                         backoff=cfg.timings.backoff)
        host_facts = await until_stopped(_register(own, who, cfg, hooks), stopping)
        if host_facts is None:
            return ExitCode.OK
        systemd.notify_ready()
        settings = WorkerSettings(
            namespace=who.namespace, name=who.name, release_dir=cfg.release_dir,
            work_dir=cfg.state_dir / "runs", backoff=cfg.timings.backoff,
            stop_grace_period=cfg.timings.stop_grace_period, host_info_period=cfg.timings.host_info_period,
            node_vars=cfg.node_vars(),
        )
        run_item = one_at_a_time(hooks.run_item)
        telemetry = Telemetry(cfg, own, secrets) if cfg.mqtt.url else None
        on_event = hooks.on_event if telemetry is None else fan_out(hooks.on_event, telemetry.on_item_event)
        metrics = AgentMetrics()
        on_reconcile = fan_out(hooks.on_reconcile, metrics.on_reconcile,
                               *(() if telemetry is None else (telemetry.on_reconcile,)))
        tokens = SwarmTokens(kube, own, docker_host=cfg.docker.host, secrets=secrets)
        worker = MachineWorker(journal, settings, run_item=run_item, on_event=on_event, own=own, steps=tokens,
                               host_facts=host_facts, metrics=metrics)
        executor = ClusterStateExecutor(
            kube, own, ExecutorSettings(
                namespace=who.namespace, name=who.name, release_dir=cfg.release_dir,
                work_dir=cfg.state_dir / "maintenance", backoff=cfg.timings.backoff,
                stop_grace_period=cfg.timings.stop_grace_period, node_vars=cfg.node_vars(),
                docker_host=cfg.docker.host),
            run_item=run_item, on_event=on_event, watch=_watch_settings(cfg))
        upgraded = asyncio.Event()

        def restart_into_new_version() -> None:
            upgraded.set()
            stopping.set()

        roots = {"watch": own.run(stopping), "worker": worker.run(stopping),
                 "watchdog": _watchdog(stopping), "cluster-states": executor.run(stopping),
                 "upgrade": upgrade_loop(own, cfg, stopping, restart=restart_into_new_version)}
        if telemetry is not None:
            roots["telemetry"] = telemetry.run(stopping, worker)
        roots["diagnostics"] = Diagnostics(
            own, EvidenceSources(cfg.state_dir, settings.work_dir, cfg.docker.host), secrets,
            publish=telemetry.on_diagnostics if telemetry is not None else None).run(stopping)
        if cfg.metrics.address:
            outbox = telemetry.outbox if telemetry is not None else None
            metrics.registry.register(HeldFigures(
                buffered=lambda: len(outbox) if outbox is not None else 0,
                dropped=lambda: outbox.dropped if outbox is not None else 0,
                write_failures=lambda: own.gave_up, api_contact=lambda: kube.answered_at))
            roots["metrics"] = serve_metrics(metrics.registry, Address.parse(cfg.metrics.address), stopping)
        if kube.credentials is not None:
            roots["token-renewal"] = TokenRenewal(kube, kube.credentials, own, RenewalSettings(
                namespace=who.namespace, machine=who.name, lifetime=cfg.api.token_lifetime,
                backoff=cfg.timings.backoff)).run(stopping)
        access = EngineAccess.from_vars(cfg.docker.host, cfg.playbook_vars)
        roots["reconcile"] = Reconciling(
            kube, own, journal, state_dir=cfg.state_dir, settings=cfg.reconcile, access=access,
            read_token=tokens.join_token, busy=lambda: isinstance(worker.step, Run),
            on_event=on_reconcile).run(stopping)
        roots["reboot"] = Rebooting(
            own, journal, cfg.reboot, here=hooks.here(cfg.reboot), state_dir=cfg.state_dir, access=access,
            busy=lambda: isinstance(worker.step, Run)).run(stopping)
        # The worker drains its running item within the grace period; the others just stop.
        result = ExitCode.OK if await guarded(roots, stopping) is None else ExitCode.FAILURE
    systemd.notify_stopping()
    return ExitCode.UPGRADED if upgraded.is_set() and result == ExitCode.OK else result


def _watch_settings(cfg: AgentSettings) -> WatchSettings:
    """The configured inactivity timeout, and reconnects paced like every other retry of the agent (capped
    at 30 s, so that the watch is back soon after an outage however long it lasted)."""
    timings = cfg.timings
    backoff = Backoff(base=timings.backoff_base, cap=min(timings.backoff_cap, 30.0))
    return WatchSettings(inactivity_timeout=timings.watch_inactivity_timeout, backoff=backoff)


async def _client(cfg: AgentSettings) -> Kube:
    token = cfg.api.token_file if cfg.api.kubeconfig is None else None
    return await connect(kubeconfig=cfg.api.kubeconfig, server=cfg.api.server, ca_file=cfg.api.ca_file,
                         token_file=token)


async def _register(own: OwnMachine, who: Identity, cfg: AgentSettings, hooks: Hooks) -> FactsTracker:
    """Find the object and report addresses and host facts. The write retries by itself until it lands;
    the object is read again when the spec makes the facts unreportable or the server refused them for
    good (the object was deleted meanwhile, say)."""
    failures = 0
    while True:
        raw = await find_or_create(own.kube, who, cfg.timings.backoff)
        host = await asyncio.to_thread(hooks.host_info)
        try:
            fields = await report(own, who, raw, host)
        except RegistrationError as exc:
            fields, why = None, str(exc)
        else:
            why = "the server refused the write"
        if fields is not None:
            log.info("registered", extra=own.fields)
            return FactsTracker(who, hooks.host_info, fields)
        delay = cfg.timings.backoff.window(failures)
        failures += 1
        log.error("registration failed: %s; retrying in %.0fs", why, delay, extra=own.fields)
        await asyncio.sleep(delay)


async def _watchdog(stopping: asyncio.Event) -> None:
    """Ping systemd's watchdog at half its interval while the event loop is healthy."""
    interval = systemd.watchdog_interval()
    if interval is None:
        await stopping.wait()
        return
    while not stopping.is_set():
        systemd.notify_watchdog()
        await first_of(stopping.wait(), seconds=interval / 2)
