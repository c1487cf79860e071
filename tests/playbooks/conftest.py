"""Fixtures for the release-playbook tests: swarms built from nothing on lab nodes (real dockerd, real
Ansible through the agent's runner), one per test module, since a deploy takes tens of seconds."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from swarm_harness import LAB_PREPARE, PREPARE, Release, Run, join_token

from testbed.lab.netns import nodes
from testbed.lab.netns.node import LabNode
from testbed.lab.netns.nodes import Lab

ENGINE = {"logDriver": "json-file", "logOpts": '{"max-size": "10m", "max-file": "3"}',
          "registryMirrors": "http://10.77.255.1:5000"}


class _Records(logging.Handler):
    """Every log record of the process while a cluster is built (the agent's own logs included)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.getMessage()} {record.__dict__}")


class CommandLineWatch:
    """Samples every process's argv until stopped: a token on a command line would show up here."""

    def __init__(self) -> None:
        self.seen: set[bytes] = set()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> CommandLineWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    try:
                        with open(f"/proc/{entry}/cmdline", "rb") as f:
                            self.seen.add(f.read())
                    except OSError:
                        continue
            self.samples += 1
            self._stop.wait(0.02)


@dataclass
class Cluster:
    lab: Lab
    release: Release
    controls: list[LabNode]
    workers: list[LabNode]
    labels: dict[str, str]
    availability: str = ""
    """Of control machines: "drain" for a dedicated control plane, "" to leave it to swarm (active)."""
    first: list[Run] = field(default_factory=list)
    second: list[Run] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)
    command_lines: set[bytes] = field(default_factory=set)
    samples: int = 0

    @property
    def manager(self) -> LabNode:
        return self.controls[0]

    @property
    def nodes(self) -> list[LabNode]:
        return self.controls + self.workers


async def deploy(cluster: Cluster) -> None:
    """Prepare, deploy and reconfigure every node in the order the scheduler releases them: prepare on all
    at once; the first control machine's deploy; other managers one at a time; workers together."""
    release, first = cluster.release, cluster.manager
    await release.prepare(cluster.nodes)
    await release.engine(cluster.nodes, ENGINE)
    await release.init(first, cluster.availability)
    cluster.tokens = [join_token(first, "manager"), join_token(first, "worker")]
    for manager in cluster.controls[1:]:
        run = await release.join(manager, cluster.controls[:1], "manager", cluster.availability)
        assert run.ok, run.result.message
    runs = await asyncio.gather(*(release.join(w, cluster.controls, "worker") for w in cluster.workers))
    assert all(r.ok for r in runs), [r.result.message for r in runs]
    await asyncio.gather(*(release.must(n, "reconfigure/daemon-config.yml", ENGINE, phase="reconfigure")
                           for n in cluster.nodes))
    await asyncio.gather(*(release.labels(n, cluster.labels[n.name]) for n in cluster.nodes))


async def redeploy(cluster: Cluster, *, swarm_only: bool = False) -> None:
    """Every item of every node once more (``swarm_only``: the swarm items), nodes in parallel, as after
    agents restarted with lost journals."""
    release = cluster.release

    async def again(node: LabNode) -> None:
        if not swarm_only:
            for name in PREPARE:
                await release.must(node, f"prepare/{name}.yml", LAB_PREPARE, phase="prepare")
            await release.must(node, "prepare/docker-engine.yml", ENGINE, phase="prepare")
        if node is cluster.manager:
            await release.init(node, cluster.availability)
        else:
            manager = node in cluster.controls
            run = await release.join(node, cluster.controls[:1], "manager" if manager else "worker",
                                     cluster.availability if manager else "")
            assert run.ok, run.result.message
        if not swarm_only:
            await release.must(node, "reconfigure/daemon-config.yml", ENGINE, phase="reconfigure")
            await release.labels(node, cluster.labels[node.name])

    await asyncio.gather(*(again(n) for n in cluster.nodes))


def build_cluster(names: tuple[Sequence[str], Sequence[str]], work_root: Path, *,
                  availability: str = "", swarm_only: bool = False) -> Iterator[Cluster]:
    """Lab nodes deployed from nothing, then items run a second time (all, or ``swarm_only``); torn down
    after the module's tests."""
    reason = nodes.missing_requirements()
    if reason:
        pytest.skip(reason)
    controls, workers = names
    lab = nodes.up([*controls, *workers], prefix=nodes.session_prefix())
    try:
        cluster = Cluster(lab, Release(work_root), [lab[n] for n in controls], [lab[n] for n in workers],
                          labels={n: f'{{"zone": "z{i % 2}", "lcm.node": "{n}"}}'
                                  for i, n in enumerate([*controls, *workers])}, availability=availability)
        records = _Records()
        logging.getLogger().addHandler(records)
        try:
            with CommandLineWatch() as watch:
                asyncio.run(deploy(cluster))
            cluster.first = list(cluster.release.runs)
            asyncio.run(redeploy(cluster, swarm_only=swarm_only))
            cluster.second = cluster.release.runs[len(cluster.first):]
        finally:
            logging.getLogger().removeHandler(records)
        cluster.log_lines, cluster.command_lines, cluster.samples = records.lines, watch.seen, watch.samples
        yield cluster
    finally:
        lab.down()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One control machine and two workers, deployed from nothing (and every item run a second time)."""
    yield from build_cluster((["ctl-1"], ["wrk-1", "wrk-2"]), tmp_path_factory.mktemp("work"))
