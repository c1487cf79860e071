"""Reading the evidence of a failed or stuck item off the machine: what a diagnostics bundle is made of.

Each reader returns plain values and never raises: a bundle is gathered when something is already wrong,
so a part that cannot be read (no engine, no journal, an item that left no artifacts) says why in its
place instead of costing the rest. Blocking (files, the engine's API, ``journalctl``): called in a thread.

* the item's newest attempt (``work_dir/artifacts/<item>/<attempt>``, ``agent.adapters.runners.artifacts``):
  the last Ansible task from ansible-runner's ``job_events`` (the failed one, if any) and the tail of its
  ``stdout``, both already redacted by the runner;
* ``docker info``, the fields that say whether the engine and its swarm membership are sound;
* the agent's journal (``journalctl -u lcm-agent``) where systemd runs it;
* the host's free disk (the state dir's filesystem) and memory (``read_host_load``, psutil).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from agent.adapters.engine_checks import engine_client
from agent.adapters.host import read_host_load
from agent.adapters.runners.artifacts import directory_name

TAIL_CHARS = 16_384
"""Characters of an output or journal tail read (the bundle's cap may cut it further)."""
JOURNAL_LINES = 200
UNIT = "lcm-agent"
DOCKER_FIELDS = ("ServerVersion", "OperatingSystem", "KernelVersion", "Driver", "Containers",
                 "ContainersRunning", "ContainersStopped", "Images", "NCPU", "MemTotal", "DockerRootDir",
                 "Warnings")
SWARM_FIELDS = ("LocalNodeState", "NodeID", "ControlAvailable", "Error", "Nodes", "Managers")
"""What of ``docker info`` a bundle keeps: the engine's health and its swarm membership, not its plugins
or registry mirrors."""


def telling_attempt(work_dir: Path, item: str) -> Path | None:
    """The directory of the item's newest finished attempt (ansible-runner writes its ``rc`` at the end),
    else of its newest: an item flagged stuck is often already on its next retry, whose artifacts do not
    show the failure yet. None when it left none."""
    try:
        attempts = [p for p in (work_dir / "artifacts" / directory_name(item)).iterdir() if p.name.isdigit()]
    except OSError:
        return None
    attempts.sort(key=lambda p: int(p.name), reverse=True)
    return next((p for p in attempts if (p / "rc").exists()), attempts[0] if attempts else None)


def last_task(run_dir: Path) -> dict[str, Any]:
    """The run's last Ansible task (its failed one, if a task failed) from ``job_events``: name, play,
    host, what happened and the module's message (``msg`` and ``stderr``: a shell task's is in the latter)."""
    events = []
    for path in (run_dir / "job_events").glob("*.json"):
        try:
            events.append(json.loads(path.read_text(errors="replace")))
        except (OSError, ValueError):
            continue
    events.sort(key=lambda e: e.get("counter", 0) if isinstance(e, dict) else 0)
    tasks = [e for e in events if isinstance(e, dict) and (e.get("event_data") or {}).get("task")]
    failed = [e for e in tasks if e.get("event") in ("runner_on_failed", "runner_on_unreachable")]
    if not tasks:
        return {"error": "no Ansible task ran" if events else "no Ansible events (not an ansible item?)"}
    chosen = (failed or tasks)[-1]
    data = chosen.get("event_data") or {}
    res = data.get("res")
    result: dict[str, Any] = res if isinstance(res, dict) else {}
    return {"task": data.get("task", ""), "play": data.get("play", ""), "host": data.get("host", ""),
            "event": chosen.get("event", ""),
            "message": "\n".join(str(result[k]) for k in ("msg", "stderr") if result.get(k))[-TAIL_CHARS:]}


def output_tail(run_dir: Path) -> str:
    """The end of the run's redacted log (the runner's ``stdout`` artifact)."""
    try:
        with open(run_dir / "stdout", "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - TAIL_CHARS))
            return f.read().decode(errors="replace")
    except OSError as exc:
        return f"no output: {exc.strerror or exc}"


def docker_summary(host: str) -> dict[str, Any]:
    """The telling fields of ``docker info`` from the machine's engine, or why it did not answer."""
    try:
        info = engine_client(host).info()
    except Exception as exc:  # the docker SDK raises requests' and its own errors alike
        return {"error": f"the engine at {host} did not answer: {exc}"}
    summary = {key: info.get(key) for key in DOCKER_FIELDS if key in info}
    swarm = info.get("Swarm") or {}
    summary["Swarm"] = {key: swarm.get(key) for key in SWARM_FIELDS if key in swarm}
    return summary


def journal_tail(unit: str = UNIT, lines: int = JOURNAL_LINES) -> str:
    """The unit's newest journal lines where systemd runs the agent; else why there are none (the agent
    logs to stderr: outside systemd, whoever started it holds its log)."""
    journalctl = shutil.which("journalctl")
    if not os.path.isdir("/run/systemd/system") or journalctl is None or not os.environ.get("INVOCATION_ID"):
        return "not run by systemd: the agent's log is its stderr, kept by whoever started it"
    try:
        done = subprocess.run([journalctl, "-u", unit, "-n", str(lines), "-o", "cat", "--no-pager"],
                              capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"journalctl failed: {exc}"
    text = done.stdout.decode(errors="replace")
    return text[-TAIL_CHARS:] if done.returncode == 0 else f"journalctl exited {done.returncode}: {text}"


def host_resources(state_dir: Path) -> dict[str, Any]:
    """Free disk (the state dir's filesystem: where items and their artifacts write) and memory, bytes."""
    try:
        load = read_host_load(state_dir)
    except OSError as exc:
        return {"error": str(exc)}
    return {"disk": {"path": load.disk_path, "total": load.disk_total, "free": load.disk_free},
            "memory": {"total": load.memory_total, "available": load.memory_available},
            "load": list(load.load)}
