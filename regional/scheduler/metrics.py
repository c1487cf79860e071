"""lcm-scheduler's Prometheus metrics (docs/metrics.md): computed when Prometheus scrapes, from what the
process already holds.

The controller's caches already know every machine's cluster, type and state, every cluster's progress and
whether it is paused or halted; the writer already counts its writes; the liveness book already knows who
was heard. So these collectors read them at scrape time instead of updating gauges on every change: a
scrape costs one pass over the caches (bench/metrics_scrape.py: 1,000 machines), a fleet that changes
costs nothing more, and what a scrape shows is one consistent moment (the endpoint is served on the event
loop that changes the caches). Only the planner's durations are observed as they happen (a histogram).

Labels are bounded for a fleet of thousands: namespace, cluster, machine type and state, verb and resource,
an HTTP status; never a machine's name. A standby replica (no lease) exports no cache figures: its caches
are not fed, and two replicas must not both count the fleet.

Other collectors (e.g. one built from what agents send over MQTT) are registered on the scheduler's
registry: ``Scheduler.registry``, which companions get as ``CompanionContext.registry``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent.adapters.followed import raw_field
from regional.planning.contract import PAUSED_ANNOTATION
from regional.planning.liveness import CONDITION, LivenessBook
from regional.scheduler.controller import Controller

PLAN_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Seconds: a small cluster plans in milliseconds, 1,000 machines in about 0.2 s, 5,000 within 1 s."""
_CLUSTER = ("namespace", "cluster")


def plan_histogram(registry: CollectorRegistry) -> Histogram:
    """Planner runs and their wall time (the planner is pure CPU); its ``_count`` is the number of runs."""
    return Histogram("lcm_scheduler_plan_duration_seconds", "Wall time of one planner run for one cluster.",
                     buckets=PLAN_BUCKETS, registry=registry)


class SchedulerCollector(Collector):
    """The leader's caches, queue and writes, and the leadership itself, read at scrape time."""

    def __init__(self, terms: Sequence[Controller], leading: Callable[[], bool]) -> None:
        self.terms, self.leading = terms, leading
        """Every leadership term's controller, newest last (``Scheduler.terms``)."""

    def collect(self) -> Iterator[Metric]:
        leading = self.leading()
        yield GaugeMetricFamily("lcm_scheduler_leader", "1 while this replica holds the lease.",
                                value=1 if leading else 0)
        yield CounterMetricFamily("lcm_scheduler_leadership_terms", "Leadership terms this replica started.",
                                  value=len(self.terms))
        yield from self._writes()
        if leading and self.terms:
            yield from _caches(self.terms[-1])

    def _writes(self) -> Iterator[Metric]:
        done: Counter[str] = Counter()
        refused: Counter[tuple[str, str, int]] = Counter()
        sent = dropped = 0
        for term in self.terms:
            done.update(term.writer.counts)
            refused.update(term.writer.failures)
            sent, dropped = sent + term.recorder.sent, dropped + term.recorder.dropped
        writes = CounterMetricFamily("lcm_scheduler_writes", "Writes of LCM objects the API server took, by "
                                     "verb and resource (a subresource after a slash).",
                                     labels=["verb", "resource"])
        for key, count in sorted(done.items()):
            if key != "superseded":
                verb, resource = key.split(" ", 1)
                writes.add_metric([verb, resource], count)
        yield writes
        yield CounterMetricFamily("lcm_scheduler_writes_superseded", "Planned writes dropped because the "
                                  "cache showed them done.", value=done["superseded"])
        failures = CounterMetricFamily("lcm_scheduler_write_failures", "Writes the API server refused or "
                                       "never answered (code 0), by verb, resource and HTTP status.",
                                       labels=["verb", "resource", "code"])
        for (verb, resource, code), count in sorted(refused.items()):
            failures.add_metric([verb, resource, str(code)], count)
        yield failures
        yield CounterMetricFamily("lcm_scheduler_events_sent", "Kubernetes Events sent.", value=sent)
        yield CounterMetricFamily("lcm_scheduler_events_dropped", "Kubernetes Events dropped (queue full or "
                                  "the send failed).", value=dropped)


def _caches(term: Controller) -> Iterator[Metric]:
    """Figures of the current term's caches (raw fields: a malformed object still counts where it is)."""
    yield GaugeMetricFamily("lcm_scheduler_queue_depth", "Clusters waiting to be planned.",
                            value=len(term.queue))
    machines: Counter[tuple[str, str, str, str]] = Counter()
    stuck: Counter[tuple[str, str]] = Counter()
    unreachable: Counter[tuple[str, str]] = Counter()
    for machine in term.machines.entries():
        raw = machine.raw
        where = (_text(raw, "metadata", "namespace"), _text(raw, "spec", "clusterName"))
        kind = _text(raw, "spec", "type") or "unassigned"
        machines[(*where, kind, _text(raw, "status", "state") or "Uninitialized")] += 1
        if raw_field(raw, "status", "lcmOperationStuck") is True:
            stuck[where] += 1
        if _condition(raw, CONDITION) == "False":
            unreachable[where] += 1
    family = GaugeMetricFamily("lcm_scheduler_machines", "LCMMachines by cluster, type and state.",
                               labels=[*_CLUSTER, "type", "state"])
    for labels, count in sorted(machines.items()):
        family.add_metric(list(labels), count)
    yield family
    gauges = {
        "requested": GaugeMetricFamily("lcm_scheduler_cluster_requested_machines", "Machines the "
                                       "cluster holds that are not leaving (status.requestedNodes).",
                                       labels=_CLUSTER),
        "ready": GaugeMetricFamily("lcm_scheduler_cluster_ready_machines", "Of those, released and Ready "
                                   "(status.readyNodes).", labels=_CLUSTER),
        "paused": GaugeMetricFamily("lcm_scheduler_cluster_paused", "1 while the LCMCluster is paused "
                                    f"({PAUSED_ANNOTATION}).", labels=_CLUSTER),
        "halted": GaugeMetricFamily("lcm_scheduler_cluster_halted", "1 while the rollout is halted by a "
                                    "stuck machine (status.lcmOperationStuck).", labels=_CLUSTER),
        "stuck": GaugeMetricFamily("lcm_scheduler_cluster_stuck_machines", "Machines flagged "
                                   "status.lcmOperationStuck.", labels=_CLUSTER),
        "unreachable": GaugeMetricFamily("lcm_scheduler_cluster_unreachable_agents", "Machines whose "
                                         f"{CONDITION} condition is False.", labels=_CLUSTER),
    }
    releases = GaugeMetricFamily("lcm_scheduler_cluster_release_info", "The release the cluster asks for "
                                 "(wanted) and the one every machine is done with (applied); they differ "
                                 "while an upgrade rolls.", labels=[*_CLUSTER, "wanted", "applied"])
    for cluster in term.clusters.entries():
        raw = cluster.raw
        key = (_text(raw, "metadata", "namespace"), _text(raw, "metadata", "name"))
        annotations = raw_field(raw, "metadata", "annotations")
        paused = isinstance(annotations, dict) and annotations.get(PAUSED_ANNOTATION) == "true"
        values = {"requested": _number(raw, "status", "requestedNodes"),
                  "ready": _number(raw, "status", "readyNodes"), "paused": int(paused),
                  "halted": int(raw_field(raw, "status", "lcmOperationStuck") is True),
                  "stuck": stuck[key], "unreachable": unreachable[key]}
        for name, value in values.items():
            gauges[name].add_metric(list(key), value)
        releases.add_metric([*key, _text(raw, "spec", "release"), _text(raw, "status", "release")], 1)
    yield from gauges.values()
    yield releases


class AgentsCollector(Collector):
    """Agents reachable or not, by namespace, as the MQTT liveness book judges them now."""

    def __init__(self, book: LivenessBook, clock: Callable[[], float] = time.monotonic) -> None:
        self.book, self.clock = book, clock

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        counts: Counter[tuple[str, str]] = Counter()
        for key in list(self.book.machines):
            counts[(key[0], "true" if self.book.verdict(key, now).reachable else "false")] += 1
        family = GaugeMetricFamily("lcm_scheduler_agents", "Agents heard of over MQTT, by namespace and "
                                   "whether they are reachable now (heartbeats within their grace).",
                                   labels=["namespace", "reachable"])
        for labels, count in sorted(counts.items()):
            family.add_metric(list(labels), count)
        yield family


def _text(raw: Any, *path: str) -> str:
    value = raw_field(raw, *path)
    return value if isinstance(value, str) else ""


def _condition(raw: Any, kind: str) -> str:
    """The status of condition ``kind`` of the object's status, "" when it has none."""
    conditions = raw_field(raw, "status", "conditions")
    for condition in conditions if isinstance(conditions, list) else ():
        if isinstance(condition, dict) and condition.get("type") == kind:
            return str(condition.get("status", ""))
    return ""


def _number(raw: Any, *path: str) -> float:
    value = raw_field(raw, *path)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
