"""Per-item overhead of the ansible runner, against plain ``ansible-playbook`` on the same playbook.

Both sides run the same trivial playbook (one ``debug`` task, no fact gathering) against localhost over the
local connection with this venv's python, alternately, after one warm-up each; the figure is the difference
of the medians. It covers everything the adapter adds: artifact directory and rotation, ansible-runner's
configuration, the pseudo-terminal and event parsing, the secret handoff, redaction, the result.

    .venv/bin/python bench/runner_overhead.py [--runs 5] [--with-secret]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agent.adapters.runners import run_item
from agent.api.execution import ItemEvent, ItemInput

BUDGET_MS = 300.0
PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: say hello
      ansible.builtin.debug:
        msg: hello
"""


def plain(release: Path, work: Path) -> float:
    inventory = work / "hosts.json"
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory.write_text(json.dumps({"all": {"hosts": {"localhost": host}}}))
    env = {**os.environ, "ANSIBLE_HOME": str(work / "plain-home"), "ANSIBLE_PIPELINING": "True"}
    playbook = Path(sys.executable).parent / "ansible-playbook"
    start = time.perf_counter()
    subprocess.run(
        [str(playbook), "-i", str(inventory), str(release / "bench.yml")],
        check=True, env=env, stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def adapter(release: Path, work: Path, attempt: int, secret: bool) -> float:
    item = ItemInput(
        machine="bench", name="bench", runner="ansible", version="1", phase="deploy",
        params={"playbook": "bench.yml"}, attempt=attempt, release_dir=release, work_dir=work,
        timeout=None, secrets={"token": "bench-secret"} if secret else {},
    )

    def ignore(_: ItemEvent) -> None:
        return None

    start = time.perf_counter()
    result = asyncio.run(run_item(item, ignore))
    elapsed = time.perf_counter() - start
    if not result.succeeded:
        raise SystemExit(f"adapter run failed: {result.message}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--with-secret", action="store_true", help="include the secret handoff")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        release, work = Path(tmp) / "release", Path(tmp) / "work"
        release.mkdir()
        work.mkdir()
        (release / "bench.yml").write_text(PLAYBOOK)
        plain(release, work)
        adapter(release, work, 0, args.with_secret)
        plain_s, adapter_s = [], []
        for attempt in range(1, args.runs + 1):
            plain_s.append(plain(release, work))
            adapter_s.append(adapter(release, work, attempt, args.with_secret))
    p, a = statistics.median(plain_s) * 1000, statistics.median(adapter_s) * 1000
    overhead = a - p
    print(f"ansible-playbook median: {p:.0f} ms; run_item median: {a:.0f} ms ({args.runs} runs each)")
    verdict = "within" if overhead <= BUDGET_MS else "OVER"
    print(f"adapter overhead per item: {overhead:.0f} ms (budget {BUDGET_MS:.0f} ms, {verdict} budget)")


if __name__ == "__main__":
    main()
