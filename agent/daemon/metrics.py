"""The agent's Prometheus metrics (docs/metrics.md), on a registry of the daemon's own.

What happens (an item run and its duration, a reconciler run, a drift found) is counted as it happens, by
the worker and through the reconciler's telemetry sink; what the agent holds (the MQTT outbox, the status
writes that gave up, the last answer from the API) is read when Prometheus scrapes, by a collector, so
nothing is updated on every change that nobody may ever ask for.

Labels stay bounded: item names and phases come from the release (a few dozen), outcomes and drift
components are fixed sets; the machine is the scrape target, never a label.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from agent import __version__

ITEM_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)
"""Seconds: a bash item takes well under one, a package install minutes, an engine upgrade up to the
hour of the planner's ``item_time_limit``."""


class AgentMetrics:
    """The metrics every part of the daemon reports into; ``registry`` is what the endpoint serves."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.item_runs = Counter("lcm_agent_item_runs", "Item runs that ended, by item, phase and outcome "
                                 "(success, failed, cancelled, timeout).", ["item", "phase", "outcome"],
                                 registry=r)
        self.item_duration = Histogram("lcm_agent_item_duration_seconds", "Wall time of item runs.",
                                       ["item", "phase"], buckets=ITEM_BUCKETS, registry=r)
        self.item_retries = Counter("lcm_agent_item_retries", "Item runs that were a retry (attempt 2 or "
                                    "later).", ["item", "phase"], registry=r)
        self.reconciler_runs = Counter("lcm_agent_reconciler_runs", "Reconciler runs that ended, by outcome "
                                       "(converged, failed).", ["outcome"], registry=r)
        self.drift_checks = Counter("lcm_agent_drift_checks", "Checks of the engine against the recorded "
                                    "desired state, by result (clean, drifted, skipped: paused for "
                                    "maintenance, an item running, or backing off).", ["result"], registry=r)
        self.drifts = Counter("lcm_agent_drifts", "Drifted components found by the checks, each time a "
                              "reconciler run was started for them.", ["component"], registry=r)
        Info("lcm_agent_build", "The agent's version.", registry=r).info({"version": __version__})

    def item_ended(self, item: str, phase: str, attempt: int, outcome: str, seconds: float) -> None:
        self.item_runs.labels(item, phase, outcome).inc()
        self.item_duration.labels(item, phase).observe(max(seconds, 0.0))
        if attempt > 1:
            self.item_retries.labels(item, phase).inc()

    def on_reconcile(self, event: str, data: Mapping[str, Any]) -> None:
        """The reconciler's telemetry sink (``drift_watch.ReconcileSink``), fanned out beside MQTT's."""
        if event == "checked":
            self.drift_checks.labels(str(data.get("result", ""))).inc()
        elif event == "drift":
            for drifted in data.get("components") or ():
                self.drifts.labels(str(drifted.get("component", ""))).inc()
        elif event == "finished":
            self.reconciler_runs.labels("converged" if data.get("converged") else "failed").inc()


class HeldFigures(Collector):
    """What the daemon holds, read at scrape time: each reader returns the figure now."""

    def __init__(self, *, buffered: Callable[[], int], dropped: Callable[[], int],
                 write_failures: Callable[[], int], api_contact: Callable[[], float]) -> None:
        self.buffered, self.dropped = buffered, dropped
        self.write_failures, self.api_contact = write_failures, api_contact

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield GaugeMetricFamily("lcm_agent_mqtt_buffered_messages",
                                "Telemetry messages waiting for the broker.", value=self.buffered())
        yield CounterMetricFamily("lcm_agent_mqtt_dropped_messages", "Telemetry messages dropped because "
                                  "the outbox was full (the oldest go first).", value=self.dropped())
        yield CounterMetricFamily("lcm_agent_status_write_failures", "Writes of the LCMMachine's status "
                                  "that gave up (the journal keeps outcomes until one lands).",
                                  value=self.write_failures())
        contact = self.api_contact()
        if contact:
            yield GaugeMetricFamily("lcm_agent_api_last_contact_timestamp_seconds", "When the API server "
                                    "last answered (a response or a watch event), Unix time.", value=contact)
