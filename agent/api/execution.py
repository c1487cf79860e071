"""What the executor hands a state-item runner, and what it gets back.

Values only, no I/O: the executor builds an ``ItemInput`` from the LCMMachine spec and the local journal, the
runner (``agent.adapters.runners``) returns an ``ItemResult`` that maps one to one onto
``status.stateItemStatuses[name]``, and ``ItemEvent`` carries live progress for the MQTT plane without
touching the Kubernetes API.

Event kinds, so consumers need not read the runners:

* ``started`` / ``finished`` — every runner; ``finished`` data: ``result``, ``exit_code``, ``version`` (the
  item's) and ``seconds`` (how long the run took).
* ``task_started`` — ansible; data: ``task``, ``play``, ``counts``.
* ``task_ok`` / ``task_changed`` / ``task_failed`` / ``task_ignored`` (failed under ``ignore_errors``) /
  ``task_skipped`` / ``task_unreachable`` — ansible; data: ``task``, ``host``, ``counts`` (running totals
  per status, all hosts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

Outcome = Literal["success", "failed", "cancelled", "timeout"]

EXIT_FAILED = 1
"""The runner itself failed (bad download, refused input) without a process exit code to report."""
EXIT_INVALID = 2
"""The item's params were refused before anything ran (unknown runner, path escaping the release)."""
EXIT_TIMEOUT = 124
"""The item ran longer than its timeout (the convention of GNU ``timeout``)."""
EXIT_CANCELLED = 130
"""The item was cancelled (128 + SIGINT, the shell's convention for an interrupted command)."""

RUNNER_VARS = frozenset({"lcm_machine", "lcm_item", "lcm_version", "lcm_phase", "lcm_attempt"})
"""Extra vars the ansible runner sets from the ``ItemInput`` itself; nothing else may supply them."""


@dataclass(frozen=True)
class ItemInput:
    """One run of one state item, as the executor decided it.

    ``params`` are the item's params with ``stateItemsOverwrites`` already merged. ``secrets`` map a name to a
    value the item needs (a swarm join token): runners hand them to the process through its environment as
    ``LCM_SECRET_<NAME>`` and redact the values from everything they report; they never reach disk or argv.
    ``timeout`` is seconds, ``None`` for no limit. ``attempt`` starts at 1 and is committed to status before
    the run, so artifacts of different attempts never mix.

    ``node_vars`` are this machine's own settings for the playbooks (``lcm_docker_host`` and the agent
    config's ``playbook_vars``). They are kept apart from ``params`` because they are not the release's: they
    stay out of the item's hash (moving the docker socket must not re-run every item) and they win over a
    param of the same name (a release cannot point a node's playbooks at another engine or directory).
    """

    machine: str
    name: str
    runner: str
    version: str
    phase: str
    params: Mapping[str, str]
    attempt: int
    release_dir: Path
    work_dir: Path
    timeout: float | None = None
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    node_vars: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ItemResult:
    """How a run ended: ``exit_code`` 0 and ``result`` "success" together mean the item is done.

    ``message`` is the operator-facing reason (for a failure: what failed and the log tail), ``log_tail`` the
    last lines of output; both already have every secret value replaced by ``***``.
    """

    exit_code: int
    result: Outcome
    message: str
    log_tail: str = ""

    @property
    def succeeded(self) -> bool:
        return self.result == "success" and self.exit_code == 0


@dataclass(frozen=True)
class ItemEvent:
    """Progress of a running item; ``kind`` is one of those listed in the module docstring."""

    item: str
    kind: str
    data: Mapping[str, Any]


class EventSink(Protocol):
    """Receives progress events on the event loop's thread; it must not block."""

    def __call__(self, event: ItemEvent, /) -> None: ...
