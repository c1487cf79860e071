"""The agent under test against a real API simulator over HTTPS, with real playbooks.

``Node`` is one machine: an LCMMachine in the test's namespace, a ServiceAccount whose Role
allows only that object (as a provider would issue), the agent's config file, a copy of ``release/``
and helpers to watch what a user would watch (``status``, counter files, MODIFIED events).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import shutil
import sys
import time
import traceback
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.adapters.kube import Kube, Resource
from agent.adapters.watching import Change, watch_resource
from agent.daemon.app import ExitCode, Hooks, run_daemon
from agent.daemon.config import AgentSettings, load_config
from agent.daemon.own_machine import LCMMACHINES
from testbed.sim.testing import KubeApi, lcm_machine

RELEASE = Path(__file__).parent / "release"
ROLES = Resource("rbac.authorization.k8s.io", "v1", "roles")
ROLE_BINDINGS = Resource("rbac.authorization.k8s.io", "v1", "rolebindings")
FAST = {"backoff_base": 0.2, "backoff_cap": 2.0, "stop_grace_period": 5.0, "watch_inactivity_timeout": 5.0}
"""Timings that keep tests short: retries within seconds, a dead watch noticed in 5 s."""


STOP_PATIENCE = 120.0
"""Seconds a stopping daemon may take before the harness calls it hung. Its own bounds add up to far less (the
running item's grace, the runner's SIGTERM grace and kill wait, the broker's flush), so only a root task that
never ends trips it, however loaded the host."""


async def stopped(task: asyncio.Task[ExitCode]) -> ExitCode:
    """The exit code of a daemon told to stop. One still running after ``STOP_PATIENCE`` fails the test with
    the stacks of every pending task and thread: they name the root that did not stop and where it waits."""
    done, _ = await asyncio.wait({task}, timeout=STOP_PATIENCE)
    if done:
        return task.result()
    stacks = []
    for pending in asyncio.all_tasks():
        if pending is not asyncio.current_task():
            text = io.StringIO()
            pending.print_stack(limit=12, file=text)
            stacks.append(text.getvalue())
    for ident, frame in sys._current_frames().items():
        stacks.append(f"thread {ident}:\n" + "".join(traceback.format_stack(frame, limit=12)))
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    pytest.fail(f"the daemon did not stop within {STOP_PATIENCE:.0f}s; its tasks and threads:\n"
                + "\n".join(stacks))


class Node:
    """One machine under test; ``admin`` is the provider's view of the API."""

    def __init__(self, kube_api: KubeApi, admin: Kube, tmp: Path, name: str = "node-1") -> None:
        self.kube_api = kube_api
        self.admin = admin
        self.namespace = kube_api.namespace
        self.name = name
        self.tmp = tmp
        self.release_dir = tmp / "release"
        self.state_dir = tmp / "state"
        self.config_path = tmp / "config.yaml"
        self.events: list[tuple[float, Change]] = []
        """(``time.monotonic()`` of arrival, event) of the machine while ``recording``."""
        shutil.copytree(RELEASE, self.release_dir)

    async def grant(self, *, create: bool = False) -> Path:
        """A ServiceAccount allowed its own LCMMachine only (plus ``create``, which has no name to limit)."""
        sa = f"agent-{self.name}"
        kubeconfig = await self.kube_api.service_account_kubeconfig(self.namespace, sa)
        group = "lcm.mirantis.com"
        rules: list[dict[str, Any]] = [
            {"apiGroups": [group], "resources": ["lcmmachines"], "resourceNames": [self.name],
             "verbs": ["get", "list", "watch", "patch"]},
            {"apiGroups": [group], "resources": ["lcmmachines/status"], "resourceNames": [self.name],
             "verbs": ["get", "patch", "update"]},
        ]
        if create:
            rules.append({"apiGroups": [group], "resources": ["lcmmachines"], "verbs": ["create"]})
        await self.allow(sa, rules)
        return kubeconfig

    async def allow(self, account: str, rules: list[dict[str, Any]]) -> None:
        """A Role with ``rules``, named after ServiceAccount ``account`` and bound to it."""
        meta = {"name": account, "namespace": self.namespace}
        await self.admin.create(ROLES, self.namespace, {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": rules})
        await self.admin.create(ROLE_BINDINGS, self.namespace, {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": self.namespace}]})

    async def configure(
        self, *, create_if_missing: bool = False, token_file: Path | None = None,
        metrics_address: str = "127.0.0.1:0", **timings: float,
    ) -> AgentSettings:
        """Write the agent's config file (0600) and load it as the agent would: with a kubeconfig of a
        ServiceAccount granted its own LCMMachine, or with ``token_file`` (a provisioned machine's token,
        which the agent renews) and the API's address and CA. The metrics endpoint listens on a free port
        (tests run agents side by side), unless ``metrics_address`` says where."""
        access: dict[str, Any]
        if token_file is None:
            access = {"kubeconfig": str(await self.grant(create=create_if_missing))}
        else:
            there = self.admin.endpoint
            access = {"server": there.server, "token_file": str(token_file)}
            if there.ca_file:
                access["ca_file"] = there.ca_file
        doc = {
            "api": {**access, "namespace": self.namespace, "machine_name": self.name,
                    "create_if_missing": create_if_missing},
            "timings": {**FAST, **timings},
            "logging": {"level": "INFO", "json": True},
            "metrics": {"address": metrics_address},
            "state_dir": str(self.state_dir), "release_dir": str(self.release_dir),
        }
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            yaml.safe_dump(doc, file)
        return load_config(self.config_path, {})

    def item(
        self, name: str, phase: str = "deploy", playbook: str = "step.yml", **params: str,
    ) -> dict[str, Any]:
        """An ansible item counting its runs in ``<tmp>/<name>.count``."""
        return {"runner": "ansible", "name": name, "version": "1", "phase": phase,
                "params": {"playbook": playbook, "counter": str(self.counter(name)), **params}}

    def counter(self, name: str) -> Path:
        return self.tmp / f"{name}.count"

    def runs(self, name: str) -> list[str]:
        """The ``"<item> <attempt>"`` lines the playbook appended, one per run."""
        path = self.counter(name)
        return path.read_text().splitlines() if path.exists() else []

    async def create(self, items: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
        body = lcm_machine(self.name, self.namespace, stateItems=items, **spec)
        return await self.admin.create(LCMMACHINES, self.namespace, body)

    async def get(self) -> dict[str, Any]:
        return await self.admin.get(LCMMACHINES, self.namespace, self.name)

    async def patch_spec(self, spec: dict[str, Any]) -> dict[str, Any]:
        return await self.admin.patch(LCMMACHINES, self.namespace, self.name, {"spec": spec})

    async def wait_for(
        self, what: Callable[[dict[str, Any]], bool], within: float = 45.0, describe: str = "",
    ) -> dict[str, Any]:
        """The machine once ``what`` holds for it; fails with its last status after ``within`` seconds."""
        deadline = time.monotonic() + within
        obj: dict[str, Any] = {}
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                obj = await self.get()
                if what(obj):
                    return obj
            await asyncio.sleep(0.1)
        pytest.fail(f"timed out waiting for {describe or what}: status {obj.get('status')}")

    async def wait_observed(self, within: float = 45.0) -> dict[str, Any]:
        """The machine once its agent reported on its current spec (``status.observedGeneration``); the
        agent takes one spec at a time, so it has acted on every earlier one by then."""
        def observed(machine: dict[str, Any]) -> bool:
            return bool(status(machine).get("observedGeneration") == machine["metadata"]["generation"])

        return await self.wait_for(observed, within, "the agent to report on the current spec")

    async def wait_state(self, state: str, within: float = 45.0) -> dict[str, Any]:
        return await self.wait_for(lambda o: status(o).get("state") == state, within, f"state {state}")

    async def wait_slot(
        self, item: str, check: Callable[[dict[str, Any]], bool], within: float = 45.0, describe: str = "",
    ) -> dict[str, Any]:
        """The item's status slot once ``check`` holds for it."""
        machine = await self.wait_for(lambda o: check(slot(o, item)), within, describe or f"slot {item}")
        return slot(machine, item)

    @contextlib.asynccontextmanager
    async def recording(self) -> AsyncIterator[list[tuple[float, Change]]]:
        """Collect the machine's watch events (as the provider sees them) while the block runs."""
        stream = watch_resource(self.admin, LCMMACHINES, self.namespace,
                                field_selector=f"metadata.name={self.name}")

        listed = asyncio.Event()

        async def collect() -> None:
            async for event in stream:
                if isinstance(event, Change):
                    self.events.append((time.monotonic(), event))
                else:  # the list is in; the watch resumes from its resourceVersion, so nothing is missed
                    listed.set()

        task = asyncio.create_task(collect())
        try:
            async with asyncio.timeout(30):
                await listed.wait()
            yield self.events
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def wait_event(self, what: Callable[[dict[str, Any]], bool], within: float = 45.0,
                         describe: str = "") -> tuple[float, dict[str, Any]]:
        """The first recorded version of the machine for which ``what`` holds, even one that lasted only
        a moment (polling the object would miss it), with the time it arrived."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for at, event in self.events:
                if what(event.object):
                    return at, event.object
            await asyncio.sleep(0.05)
        pytest.fail(f"timed out waiting for {describe or what}")

    @contextlib.asynccontextmanager
    async def agent(
        self, cfg: AgentSettings, hooks: Hooks | None = None,
    ) -> AsyncIterator[asyncio.Task[ExitCode]]:
        """The daemon in this process; stopped (as by SIGTERM) when the block ends."""
        stopping = asyncio.Event()
        task = asyncio.create_task(run_daemon(cfg, stopping, hooks))
        try:
            yield task
        finally:
            stopping.set()
            code = await stopped(task)
        assert code == ExitCode.OK

    async def wait_logged(self, text: str, *, after: int = 0, within: float = 45.0) -> int:
        """Waits until the spawned agent's JSON log (``<tmp>/agent.log``) has a line whose message holds
        ``text``, from line ``after`` on; returns the number of lines read, for a later wait to start from."""
        deadline = time.monotonic() + within
        while True:
            with contextlib.suppress(FileNotFoundError):
                lines = (self.tmp / "agent.log").read_text().splitlines()
                for n, line in enumerate(lines[after:], after):
                    with contextlib.suppress(ValueError):
                        if text in json.loads(line).get("msg", ""):
                            return n + 1
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for the agent to log {text!r}")
            await asyncio.sleep(0.05)

    async def spawn(self, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
        """``lcm-agent run`` as a real process (what systemd starts), with ``env`` added to its environment;
        its log goes to ``<tmp>/agent.log``."""
        log = os.open(self.tmp / "agent.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            return await asyncio.create_subprocess_exec(
                sys.executable, "-m", "agent.cli.node", "run", "--config", str(self.config_path),
                stdout=asyncio.subprocess.DEVNULL, stderr=log, env={**os.environ, **(env or {})})
        finally:
            os.close(log)


def status(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(obj.get("status") or {})


def slot(obj: dict[str, Any], item: str) -> dict[str, Any]:
    return dict((status(obj).get("stateItemStatuses") or {}).get(item) or {})


def running(item_slot: dict[str, Any]) -> bool:
    return item_slot.get("exitCode") == -1


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


async def logged(caplog: pytest.LogCaptureFixture, text: str, *, after: int = 0, count: int = 1,
                 within: float = 45.0) -> int:
    """Waits until the in-process agent has logged ``count`` records holding ``text`` from record index
    ``after`` on (its own positive markers: a decision taken, a write that failed); returns the index just
    past the last of them, for a later wait to start from. ``caplog`` must record INFO (``capture_info``)."""
    deadline = time.monotonic() + within
    while True:
        records = caplog.records
        found = [n for n, record in enumerate(records[after:], after) if text in record.getMessage()]
        if len(found) >= count:
            return found[count - 1] + 1
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {count} log records saying {text!r}; "
                        f"last: {[r.getMessage() for r in records[-10:]]}")
        await asyncio.sleep(0.05)


def capture_info(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """``caplog`` recording the agent's INFO records and up."""
    caplog.set_level(logging.INFO, logger="agent")
    return caplog
