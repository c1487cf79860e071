"""Every file the demo's stack writes that holds a secret (the simulator's store and its journal files,
kubeconfigs, tokens, MQTT passwords, each agent's state) is owner-only in an owner-only folder: on a shared
host no other local user may read a join token or a bearer token."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from testbed.cli.demo import missing_prerequisites
from testbed.lab.netns.nodes import session_prefix

LCMCTL = str(Path(sys.executable).with_name("lcmctl"))
MACHINES = ("demo-control-0", "demo-worker-0", "demo-worker-1")
SECRET_NAMES = ("kubeconfig", "admin-token", "token", "mqtt-password", "mqtt-regional", "passwd",
                "server.key")
"""Files that are secrets by what they are, whatever a scan of their bytes finds."""


def secret_values(state: Path) -> list[bytes]:
    """Every token and password the stack handed out, read from where the stack keeps them."""
    run = state / "stack"
    files = [state / "sim" / "admin-token", run / "mqtt-regional"]
    files += [run / "agents" / m / name for m in MACHINES for name in ("token", "mqtt-password")]
    return [f.read_bytes().strip() for f in files]


def holds_secret(path: Path, values: list[bytes], state: Path) -> bool:
    rel = path.relative_to(state)
    if path.name in SECRET_NAMES or ".sqlite" in path.name:
        return True
    if rel.parts[:2] == ("stack", "agents") and len(rel.parts) > 4 and rel.parts[3] == "state":
        return True  # an agent's state directory: journal, artifacts, desired state
    data = path.read_bytes()
    return any(value in data for value in values)


def offenders(state: Path) -> list[str]:
    """``path mode`` of each secret file readable beyond its owner, or in a folder that is."""
    values = secret_values(state)
    found = []
    for dirpath, dirnames, filenames in os.walk(state):
        here = Path(dirpath)
        if here == state:
            dirnames[:] = [d for d in dirnames if d != "nodes"]  # the nodes' own dockerd trees
        for name in filenames:
            path = here / name
            if path.is_symlink() or not path.is_file() or not holds_secret(path, values, state):
                continue
            for what in (path, here):
                mode = stat.S_IMODE(what.stat().st_mode)
                if mode & 0o077:
                    found.append(f"{what} {mode:o} (holding {path.name})")
    return sorted(set(found))


def wait_for(check: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return
        assert proc.poll() is None, f"the demo ended early: {log.read_text()[-3000:]}"
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for the agents' journals: {log.read_text()[-3000:]}")


@pytest.mark.skipif(bool(missing_prerequisites("netns")), reason="; ".join(missing_prerequisites("netns")))
def test_every_file_holding_a_secret_is_owner_only(tmp_path: Path) -> None:
    state, prefix = tmp_path / "demo", session_prefix("sf")
    log = tmp_path / "demo.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([LCMCTL, "demo", "--state-dir", str(state), "--port", "0", "--prefix", prefix,
                                 "--nodes", "netns"], stdout=out, stderr=subprocess.STDOUT)
    try:
        journals = [state / "stack" / "agents" / m / "state" / "journal.json" for m in MACHINES]
        # Each agent has started an item (its journal exists), so its state holds what a run writes.
        wait_for(lambda: all(j.exists() for j in journals), proc, log, within=300)
        found = offenders(state)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(120)
    assert found == []
