"""run_item as the executor sees it: dispatch, failures turned into results, early cancellation."""

from __future__ import annotations

import asyncio
import json

import pytest
from runner_harness import Runs, command_lines

from agent.adapters import runners
from agent.adapters.runners import RunnerSettings
from agent.api.execution import EventSink, ItemEvent, ItemInput, ItemResult


async def test_unknown_runner_is_a_failed_result(runs: Runs) -> None:
    result = await runs.run(runs.item("puppet", {"manifest": "site.pp"}))
    assert result == ItemResult(2, "failed", "unknown runner 'puppet' (known: ansible, bash, downloader)", "")


async def test_a_crashing_runner_becomes_a_failed_result_without_the_secret(
    runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def crash(item: ItemInput, on_event: EventSink, settings: RunnerSettings) -> ItemResult:
        raise RuntimeError(f"bug while handling {item.secrets['token']}")

    monkeypatch.setitem(runners.RUNNERS, "bash", crash)
    result = await runs.run(runs.item("bash", {"script": "true"}, secrets={"token": "s3cr3t-t0ken"}))
    assert (result.result, result.exit_code) == ("failed", 1)
    assert result.message == "internal error in the bash runner: RuntimeError('bug while handling ***')"
    assert runs.kinds() == ["started", "finished"]


async def test_a_failing_event_sink_does_not_fail_the_item(runs: Runs) -> None:
    def broken(event: ItemEvent) -> None:
        raise ValueError("sink is broken")

    item = runs.item("bash", {"argv": json.dumps(["echo", "done"])})
    result = await runners.run_item(item, broken)
    assert (result.result, result.log_tail) == ("success", "done")


async def test_cancel_before_the_playbook_started_leaves_nothing_running(runs: Runs) -> None:
    item = runs.item("ansible", {"playbook": "sleep.yml", "marker": "/nonexistent/marker"})
    inventory = str(runs.work_dir / "artifacts").encode()
    task = asyncio.create_task(runs.run(item))
    async with asyncio.timeout(30):  # ansible-playbook's process is there...
        while True:
            if [line for line in command_lines() if inventory in line]:
                break
            await asyncio.sleep(0.01)
    assert runs.kinds() == ["started"]  # ...still importing: no event of its own yet, no pid reported
    task.cancel()
    result = await task
    assert (result.result, result.exit_code) == ("cancelled", 130)
    assert [line for line in command_lines() if inventory in line] == []
