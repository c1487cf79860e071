"""The fleet's item durations from the MQTT plane: a subscriber feeding the book, and its Prometheus view.

Every agent publishes a ``finished`` item event with the run's outcome, the item's version and how long it
took (docs/telemetry.md). ``ItemDurations`` subscribes to every machine's ``events`` as the regional user and
records them in a ``DurationBook`` (``regional.planning.durations``: bounded, pure). Two readers:

* the planner, through ``norms()`` (``PlanInput.item_norms``): stuck detection learned from the fleet;
* Prometheus, through ``DurationCollector``, a custom collector the scheduler's registry registers: one
  histogram of successful runs' durations and one counter of runs by outcome, per item and version. A
  regional roll-up that needs no scrape of a thousand nodes.

Every replica listens (a standby's book is warm when it takes over); nothing here writes to the API.
A QoS 1 resend after a reconnect counts a run twice: one run among the fleet's does not move a p95.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from agent.adapters.mqtt import BrokerSettings, MqttLink
from agent.api import telemetry as t
from regional.planning.durations import DurationBook, Key, Norm

log = logging.getLogger(__name__)

DURATION_METRIC = "lcm_fleet_item_duration_seconds"
RUNS_METRIC = "lcm_fleet_item_runs"
"""``_total`` is added by the client library, as Prometheus' naming wants for a counter."""


class ItemDurations:
    """The subscriber; ``book`` is what it has heard since the process started."""

    def __init__(self, broker: BrokerSettings, book: DurationBook | None = None) -> None:
        self.book = book or DurationBook()
        self._norms: tuple[int, Mapping[Key, Norm]] = (0, {})
        """The figures and the book's ``recorded`` they were computed at: every plan asks for them."""
        self.refused = 0
        """``finished`` events that said nothing usable (no duration: an agent older than this field)."""
        self.link = MqttLink(broker, on_message=self.on_message,
                             subscriptions=[(t.topic_filter("events"), t.QOS["events"])])

    def on_message(self, topic: str, payload: bytes) -> None:
        try:
            taken = t.received(topic, payload)
        except t.TelemetryError as exc:
            log.debug("ignored a message on %s: %s", topic, exc)
            return
        message = taken[2] if taken is not None else {}
        if message.get("kind") != "event" or message["type"] != "item" or message["event"] != "finished":
            return
        data = message["data"]
        seconds, version, outcome = data.get("seconds"), data.get("version", ""), data.get("result")
        usable = isinstance(seconds, int | float) and isinstance(version, str) and isinstance(outcome, str)
        if not usable or not self.book.record(message["item"], version, outcome, float(seconds)):
            self.refused += 1

    def norms(self) -> Mapping[Key, Norm]:
        """The planner's figures (``PlanInput.item_norms``), computed again only after new runs."""
        if self._norms[0] != self.book.recorded:
            self._norms = (self.book.recorded, self.book.norms())
        return self._norms[1]

    async def run(self, stopping: asyncio.Event) -> None:
        await self.link.run(stopping)


class DurationCollector(Collector):
    """The book as Prometheus metrics, read at each scrape (nothing is copied between scrapes)."""

    def __init__(self, book: DurationBook) -> None:
        self.book = book

    def collect(self) -> Iterator[Metric]:
        durations = HistogramMetricFamily(
            DURATION_METRIC, "How long successful runs of a state item took across the fleet, per item and "
            "item version, as the agents report them over MQTT.", labels=["item", "version"])
        runs = CounterMetricFamily(
            RUNS_METRIC, "Runs of a state item across the fleet by outcome (success, failed, cancelled, "
            "timeout), per item and item version.", labels=["item", "version", "outcome"])
        for (item, version), record in self.book.items():
            histogram = record.durations
            buckets = [("+Inf" if math.isinf(bound) else f"{bound:g}", count)
                       for bound, count in histogram.cumulative()]
            durations.add_metric([item, version], buckets, histogram.sum)
            for outcome, count in record.outcomes.items():
                runs.add_metric([item, version, outcome], count)
        yield durations
        yield runs
