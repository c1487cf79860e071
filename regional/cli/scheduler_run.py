"""What ``lcm-scheduler run`` does (its options: ``regional/cli/scheduler.py``, which imports nothing heavy so
that ``--help`` is instant): settings from the arguments, the companion tasks, the replica until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from agent.adapters.exposition import serve_metrics
from agent.adapters.kube import connect
from agent.adapters.mqtt import BrokerSettings
from agent.kits.addresses import Address
from agent.kits.logs import SecretRegistry, setup_logging
from agent.kits.stopping import StopSignals
from regional.cli.broker_options import broker_settings
from regional.scheduler.item_durations import DurationCollector, ItemDurations
from regional.scheduler.leadership import LeaseSettings, default_identity
from regional.scheduler.liveness import Liveness, LivenessSettings
from regional.scheduler.metrics import AgentsCollector
from regional.scheduler.runtime import Companion, CompanionContext, Scheduler
from regional.scheduler.settings import SchedulerSettings, Throttle

log = logging.getLogger("regional.cli.scheduler")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_FORCED = 0, 1, 2, 130


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level, json=True, secrets=SecretRegistry())
    try:
        settings = SchedulerSettings(
            namespace=args.namespace, workers=args.workers, writes=Throttle(args.qps, args.burst),
            plan_duty=args.plan_duty,
            lease=LeaseSettings(name=args.lease_name,
                                namespace=args.lease_namespace or args.namespace or "default",
                                identity=args.identity or default_identity(),
                                lease_duration=args.lease_duration, renew_deadline=args.renew_deadline,
                                retry_period=args.retry_period))
        metrics = Address.parse(args.metrics_address) if args.metrics_address else None
    except ValueError as exc:  # AddressError is one
        print(f"lcm-scheduler: {exc}", file=sys.stderr)
        return EXIT_USAGE
    durations = item_durations(args)
    companions = companion_tasks(args, durations, metrics)
    return asyncio.run(_serve(args.kubeconfig, settings, companions, durations))



def _broker(args: argparse.Namespace, role: str) -> BrokerSettings:
    """The regional user's settings; each subscriber of the process is a client of its own (``role``)."""
    return broker_settings(args, f"lcm-scheduler-{role}{default_identity()}")


def item_durations(args: argparse.Namespace) -> ItemDurations | None:
    """The fleet's item durations, read from the agents' events, when a broker is named."""
    return ItemDurations(_broker(args, "durations-")) if args.mqtt_url else None


def companion_tasks(
    args: argparse.Namespace, durations: ItemDurations | None = None, metrics: Address | None = None,
) -> dict[str, Companion]:
    """Tasks that run inside the scheduler process (``regional.scheduler.runtime.Companion``), by name:
    the metrics endpoint when ``metrics`` is given; the MQTT liveness subscriber when a broker is named, and
    the item durations' subscriber. Each subscriber registers its collector on the scheduler's registry."""
    tasks: dict[str, Companion] = {}
    if metrics is not None:

        async def endpoint(ctx: CompanionContext) -> None:
            await serve_metrics(ctx.registry, metrics, ctx.stopping)

        tasks["metrics"] = endpoint
    if not args.mqtt_url:
        return tasks
    broker = _broker(args, "")

    async def liveness(ctx: CompanionContext) -> None:
        subscriber = Liveness(ctx.kube, LivenessSettings(broker=broker), leading=ctx.leading)
        ctx.registry.register(AgentsCollector(subscriber.book))
        await subscriber.run(ctx.stopping)

    tasks["liveness"] = liveness
    if durations is not None:

        async def durations_task(ctx: CompanionContext) -> None:
            ctx.registry.register(DurationCollector(durations.book))
            await durations.run(ctx.stopping)

        tasks["item durations"] = durations_task
    return tasks


async def _serve(kubeconfig: Path, settings: SchedulerSettings, companions: dict[str, Companion],
                 durations: ItemDurations | None = None) -> int:
    try:
        kube = await connect(kubeconfig=kubeconfig)
    except Exception as exc:  # kubernetes_asyncio's loader raises its own ConfigException among others
        print(f"lcm-scheduler: cannot load kubeconfig {kubeconfig}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    stopping = asyncio.Event()
    scheduler = Scheduler(kube, settings, companions=companions,
                          item_norms=durations.norms if durations is not None else dict)
    main_task = asyncio.create_task(scheduler.run(stopping))
    signals = StopSignals(main_task, stopping)
    log.info("starting", extra={"identity": settings.lease.identity, "namespace": settings.namespace or "*",
                                "qps": settings.writes.qps, "burst": settings.writes.burst})
    code = EXIT_OK
    async with kube:
        try:
            await main_task
        except asyncio.CancelledError:
            if not signals.forced:
                raise
            code = EXIT_FORCED
        except Exception:
            code = EXIT_FAILURE
    terms = scheduler.terms
    log.info("stopped", extra={"exit_code": code, "terms": len(terms), "writes": dict(scheduler.writes),
                               "plans": sum(t.plans for t in terms),
                               "plan_seconds": round(sum(t.plan_seconds for t in terms), 3),
                               "events_sent": sum(t.recorder.sent for t in terms),
                               "events_dropped": sum(t.recorder.dropped for t in terms)})
    return code

