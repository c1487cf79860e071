"""Start-up of the operator and node commands: wall time of ``--help`` and of the local commands.

Each command runs ``--runs`` times as a fresh process of this venv (its console script, as an operator
types it); the figure is the median wall time against the budget (issue 21: 0.3 s). Local commands need no
cluster: ``lcm-agent status`` reads an empty state folder, ``lcmctl cloud-init render`` renders user-data
from a throwaway token file into a throwaway output. Beside each figure, the three top-level packages whose
import cost the most (``python -X importtime``, self time summed per package, one extra run), which is
what to make lazy when a command is over budget. On a loaded machine the figures grow with the load:
the load average is printed with them.

    .venv/bin/python bench/cli_startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_SECONDS = 0.3
_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)")


def commands(tmp: Path) -> dict[str, list[str]]:
    """What an operator or a node runs locally, by label."""
    bindir = Path(sys.executable).parent
    token = tmp / "token"  # a made-up token, 0600 in the 0700 temporary folder all the same
    os.close(os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    token.write_text("bench-token\n")
    render = [str(bindir / "lcmctl"), "cloud-init", "render", "--machine", "worker-07",
              "--namespace", "bench", "--api-server", "https://regional.invalid:6443",
              "--token-file", str(token),
              "--agent-url", "https://mirror.invalid/lcm_agent-0.1.0-py3-none-any.whl",
              "--agent-sha256", "0" * 64, "--index-url", "https://mirror.invalid/simple/",
              "--output", str(tmp / "user-data.yaml")]
    return {
        "lcmctl --help": [str(bindir / "lcmctl"), "--help"],
        "lcm-agent --help": [str(bindir / "lcm-agent"), "--help"],
        "lcm-scheduler --help": [str(bindir / "lcm-scheduler"), "--help"],
        "lcm-agent status": [str(bindir / "lcm-agent"), "status", "--state-dir", str(tmp / "state")],
        "lcmctl cloud-init render": render,
    }


def wall(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def heaviest_imports(argv: list[str], top: int = 3) -> str:
    """The packages whose imports took longest in one run of ``argv`` (its console script, under -X
    importtime)."""
    script = Path(argv[0]).read_text().splitlines()
    entry = next(line for line in script if line.startswith("from "))  # "from agent.cli.x import main"
    module = entry.split()[1]
    code = f"import sys; from {module} import main; sys.argv = {argv!r}; sys.exit(main())"
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, check=False)
    cost: collections.Counter[str] = collections.Counter()
    for line in done.stderr.splitlines():
        if match := _IMPORT_LINE.match(line):
            cost[match.group(2).split(".")[0]] += int(match.group(1))
    return ", ".join(f"{name} {micros / 1e6:.2f} s" for name, micros in cost.most_common(top))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    within = True
    print(f"command start-up, median of {args.runs} runs (load average {os.getloadavg()[0]:.1f}), "
          f"budget <= {BUDGET_SECONDS:g} s:")
    with tempfile.TemporaryDirectory(prefix="lcm-bench-cli-") as tmp:
        for label, argv in commands(Path(tmp)).items():
            times = [wall(argv) for _ in range(args.runs)]
            median = statistics.median(times)
            within = within and median <= BUDGET_SECONDS
            verdict = "ok" if median <= BUDGET_SECONDS else "OVER BUDGET"
            print(f"  {label:26s} {median:5.2f} s  {verdict:11s} (runs {min(times):.2f}-{max(times):.2f}; "
                  f"heaviest imports: {heaviest_imports(argv)})", flush=True)
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
