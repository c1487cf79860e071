"""A failing item: the failure is explained, retried with backoff, and succeeds once its cause is gone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from agent_harness import Node, slot

from agent.api.models import LCMMachine
from agent.decisions.execution import LocalRecord, Wait, next_step
from agent.kits.backoff import Backoff

BACKOFF = Backoff(base=1.0, cap=4.0)


def _attempt(n: int, *, failed: bool) -> Callable[[dict[str, Any]], bool]:
    def check(obj: dict[str, Any]) -> bool:
        entry = slot(obj, "flaky")
        code = entry.get("exitCode")
        return entry.get("attempt") == n and (code is not None and code > 0 if failed else code == -1)
    return check


async def test_failed_item_is_retried_with_backoff_until_it_succeeds(node: Node) -> None:
    cfg = await node.configure(backoff_base=BACKOFF.base, backoff_cap=BACKOFF.cap)
    marker = node.tmp / "broken"
    marker.touch()
    await node.create([node.item("flaky", "prepare", playbook="flaky.yml", marker=str(marker)),
                       node.item("later", "deploy")])
    gaps: list[tuple[float, float]] = []  # (seconds from failure to retry, seconds the backoff asked)
    async with node.recording(), node.agent(cfg):
        for attempt in (1, 2):
            failed_at, obj = await node.wait_event(_attempt(attempt, failed=True),
                                                   describe=f"attempt {attempt} failed")
            failed = slot(obj, "flaky")
            assert "refuse while the marker exists" in failed["message"]
            assert slot(obj, "later") == {}, "later items wait"
            finished = datetime.fromisoformat(failed["finishedAt"]).astimezone(UTC)
            step = next_step(LCMMachine.from_raw(obj), LocalRecord({}), finished, BACKOFF)
            assert isinstance(step, Wait)
            if attempt == 2:
                marker.unlink()
            retried_at, _ = await node.wait_event(_attempt(attempt + 1, failed=False),
                                                  describe=f"attempt {attempt + 1} started")
            gaps.append((retried_at - failed_at, (step.until - finished).total_seconds()))
        machine = await node.wait_state("Ready")
    assert slot(machine, "flaky")["attempt"] == 3
    assert slot(machine, "flaky")["exitCode"] == 0
    assert node.runs("flaky") == ["flaky 1", "flaky 2", "flaky 3"]
    for (observed, asked), window in zip(gaps, (BACKOFF.window(0), BACKOFF.window(1)), strict=True):
        assert asked <= window
        # finishedAt has second precision: up to a second of slack either way.
        assert asked - 1.0 <= observed <= asked + 1.0, (observed, asked)
