"""The agent's answer to ``spec.rebootRequired``: it reboots once per request, whatever restarts it goes
through, and reports the reboot after the boot (Mirantis' ``status.reboot``).

The reboot command here appends a line to a file (a real reboot would end the test's host); the agent's
"boot" is injected through ``Hooks.here``, as the kernel's boot id would change.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from agent_harness import Node, status

from agent.daemon.app import Hooks
from agent.daemon.config import AgentSettings, RebootSettings
from agent.daemon.own_machine import LCMMACHINES
from agent.daemon.rebooting import here
from agent.decisions.rebooting import Here


def _boot(boot_id: str, run_id: str) -> Hooks:
    return Hooks(here=lambda settings: Here(boot_id, run_id, settings.restart_is_reboot))


async def _configured(node: Node, command: str) -> AgentSettings:
    cfg = await node.configure()
    return dataclasses.replace(cfg, reboot=RebootSettings(command=command, check_period=0.2))


def _reboot(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(status(obj).get("reboot") or {})


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def test_a_request_reboots_the_machine_once_across_agent_restarts_and_is_reported_after_boot(
    node: Node,
) -> None:
    reboots = node.tmp / "reboots"
    cfg = await _configured(node, f"/bin/sh -c 'echo reboot >> {reboots}'")
    await node.create([node.item("only")])
    async with node.agent(cfg, _boot("boot-1", "run-1")):
        await node.wait_state("Ready")
        await node.patch_spec({"rebootRequired": True})
        asked = await node.wait_for(lambda o: bool(_reboot(o).get("requestedAt")), describe="requestedAt")
        assert status(asked)["state"] == "Reboot"
        await node.wait_for(lambda _: _lines(reboots) == ["reboot"], describe="the reboot command ran")
    # The machine went down and came back: a new boot, a new agent process, the mark on disk.
    async with node.agent(cfg, _boot("boot-2", "run-2")):
        back = await node.wait_for(lambda o: _reboot(o).get("completed") is True, describe="completed")
    assert _lines(reboots) == ["reboot"]
    assert _reboot(back)["requestedAt"] == _reboot(asked)["requestedAt"]
    assert status(back)["state"] == "Ready"
    async with node.agent(cfg, _boot("boot-3", "run-3")):  # restarted again: the request is done
        await node.patch_spec({"rebootRequired": False})
        cleared = await node.wait_for(lambda o: "reboot" not in status(o), describe="status.reboot cleared")
        assert status(cleared)["state"] == "Ready"
        assert _lines(reboots) == ["reboot"]
        await node.patch_spec({"rebootRequired": True})  # a new request: one more reboot
        await node.wait_for(lambda _: _lines(reboots) == ["reboot", "reboot"], describe="second reboot")


async def test_an_agent_restarted_in_the_same_boot_says_the_machine_did_not_reboot(node: Node) -> None:
    reboots = node.tmp / "reboots"
    cfg = await _configured(node, f"/bin/sh -c 'echo reboot >> {reboots}'")
    await node.create([node.item("only")], rebootRequired=True)
    async with node.agent(cfg, _boot("boot-1", "run-1")):
        await node.wait_for(lambda _: _lines(reboots) == ["reboot"], describe="the reboot command ran")
    async with node.agent(cfg, _boot("boot-1", "run-2")):  # the shutdown never came
        failed = await node.wait_for(lambda o: bool(_reboot(o).get("errorMessage")), describe="errorMessage")
    assert "did not reboot" in _reboot(failed)["errorMessage"]
    assert _reboot(failed).get("completed") is not True
    assert _lines(reboots) == ["reboot"]


async def test_a_failing_reboot_command_is_reported_and_not_run_again(node: Node) -> None:
    tries = node.tmp / "tries"
    cfg = await _configured(node, f"/bin/sh -c 'echo try >> {tries}; echo no power >&2; exit 3'")
    await node.create([node.item("only")], rebootRequired=True)
    async with node.agent(cfg, _boot("boot-1", "run-1")):
        failed = await node.wait_for(lambda o: bool(_reboot(o).get("errorMessage")), describe="errorMessage")
    assert "exit code 3: no power" in _reboot(failed)["errorMessage"]
    # The error's write lost (here: removed by hand), a restarted agent writes it again, from its journal.
    lost = {"status": {"reboot": {"errorMessage": None}}}
    await node.admin.patch(LCMMACHINES, node.namespace, node.name, lost, subresource="status")
    async with node.agent(cfg, _boot("boot-1", "run-2")):
        again = await node.wait_for(lambda o: bool(_reboot(o).get("errorMessage")), describe="errorMessage")
    assert _reboot(again)["errorMessage"] == _reboot(failed)["errorMessage"]
    assert _lines(tries) == ["try"]


async def test_where_the_command_restarts_the_engine_alone_its_success_is_the_reboot_done(node: Node) -> None:
    restarts = node.tmp / "restarts"
    cfg = await _configured(node, f"/bin/sh -c 'echo restart >> {restarts}'")
    cfg = dataclasses.replace(cfg, reboot=dataclasses.replace(cfg.reboot, restart_is_reboot=True))
    await node.create([node.item("only")], rebootRequired=True)
    async with node.agent(cfg, _boot("host-boot", "run-1")):  # the host's boot, which never changes
        back = await node.wait_for(lambda o: _reboot(o).get("completed") is True, describe="completed")
    assert status(back)["state"] == "Ready"
    assert _lines(restarts) == ["restart"]


def test_a_boot_is_named_by_its_first_agent_and_each_agent_process_has_its_own_id(tmp_path: Path) -> None:
    mark = tmp_path / "run" / "lcm-agent" / "boot"
    first = here(RebootSettings(), mark)
    again = here(RebootSettings(), mark)  # an agent restarted in the same boot
    assert (again.boot_id, mark.stat().st_mode & 0o777) == (first.boot_id, 0o600)
    assert again.run_id != first.run_id
    mark.unlink()  # /run is a tmpfs: a reboot empties it
    assert here(RebootSettings(), mark).boot_id != first.boot_id
