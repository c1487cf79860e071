"""A real Prometheus server (Debian's ``prometheus``) on a free loopback port, scraping the targets it is
given, with the repository's alert rules (``deploy/monitoring``) loaded; and ``/metrics`` pages as values.

Its configuration and its storage are its own directory's, so it never touches the system's instance (the
Debian package installs one as a service, which the lab leaves stopped). The tests read figures back
through its HTTP query API (``query``) and the health of each target (``targets``), as an operator's
dashboard would; ``scrape`` parses one endpoint's page with the Prometheus client's own parser.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from testbed import CHECKOUT
from testbed.lab.stack import ports
from testbed.lab.stack.mosquitto import free_port

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
RULES = CHECKOUT / "deploy" / "monitoring" / "lcm-rules.yml"
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""Everything here is on this host or its lab bridge: never through a proxy the environment names."""
SCRAPE_INTERVAL = 5.0
"""Seconds between scrapes, and the scrape timeout (which may not exceed it): a test's rollout lasts a minute
or more, and on a loaded host a scrape answered within a second may still arrive later than one."""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
"""``(sample name, labels) → value`` of one page."""


def available() -> str:
    """Why no Prometheus can run here, or "" when it can."""
    missing = [p for p in (PROMETHEUS, PROMTOOL) if not os.access(p, os.X_OK)]
    return f"{', '.join(missing)} missing (apt-get install prometheus)" if missing else ""


@dataclass(frozen=True)
class Job:
    """A scrape job: its name and the ``host:port`` addresses serving ``/metrics``."""

    name: str
    targets: Sequence[str]


class PrometheusServer:
    """One server process in ``workdir``, scraping ``jobs`` every ``SCRAPE_INTERVAL``."""

    def __init__(self, workdir: Path, jobs: Sequence[Job], *, port: int = 0) -> None:
        self.workdir = workdir
        self.jobs = tuple(jobs)
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        self.workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copyfile(RULES, self.workdir / RULES.name)
        config = {
            "global": {"scrape_interval": f"{SCRAPE_INTERVAL:g}s", "scrape_timeout": f"{SCRAPE_INTERVAL:g}s",
                       "evaluation_interval": f"{SCRAPE_INTERVAL:g}s"},
            "rule_files": [str(self.workdir / RULES.name)],
            "scrape_configs": [{"job_name": job.name, "static_configs": [{"targets": list(job.targets)}]}
                               for job in self.jobs],
        }
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        return path

    def start(self, timeout: float = 60.0) -> None:
        """Start and wait until the server says it is ready."""
        config = self.write_config()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={self.workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle"],
                stdout=log, stderr=log, start_new_session=True, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with _DIRECT.open(f"{self.url}/-/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        cause = ports.why_not_listening("127.0.0.1", self.port)
        raise RuntimeError(f"prometheus did not become ready on port {self.port}"
                           + (f": {cause}" if cause else "") + f" (log {self.log})")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def api(self, path: str, **params: str) -> Any:
        """``GET /api/v1/<path>``'s ``data``; raises when the server answers with an error."""
        query = urllib.parse.urlencode(params)
        with _DIRECT.open(f"{self.url}/api/v1/{path}?{query}", timeout=10) as answer:
            body = json.loads(answer.read())
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus refused {path} {params}: {body}")
        return body["data"]

    async def query(self, expr: str) -> dict[frozenset[tuple[str, str]], float]:
        """An instant query's vector: labels → value."""
        data = await asyncio.to_thread(self.api, "query", query=expr)
        return {frozenset(r["metric"].items()): float(r["value"][1]) for r in data["result"]}

    async def targets(self) -> list[dict[str, Any]]:
        """The active targets with their ``health`` and ``lastError``."""
        data = await asyncio.to_thread(self.api, "targets", state="active")
        return list(data["activeTargets"])

    async def rules(self) -> list[dict[str, Any]]:
        """Every rule group as the server loaded it, with each rule's ``health``."""
        data = await asyncio.to_thread(self.api, "rules")
        return list(data["groups"])


def parse(page: str) -> Samples:
    """A ``/metrics`` page as its samples."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(page) for s in family.samples}


def families(page: str) -> set[str]:
    """The metric family names a page declares (a family with no sample yet still has its HELP)."""
    return {family.name for family in text_string_to_metric_families(page)}


def fetch(address: str) -> str:
    """``http://<address>/metrics`` as text."""
    with _DIRECT.open(f"http://{address}/metrics", timeout=10) as answer:
        text: str = answer.read().decode()
        return text


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples named ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


def labelled(samples: Samples, name: str) -> list[Mapping[str, str]]:
    """The label sets of every sample named ``name``."""
    return [dict(have) for (n, have) in samples if n == name]
