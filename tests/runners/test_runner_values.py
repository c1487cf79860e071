"""The pure pieces of the runners, as tables: redaction, names, progress, outcomes, download params."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.adapters.runners.artifacts import directory_name
from agent.adapters.runners.downloader import Download, ParamsError, parse
from agent.adapters.runners.environment import NameCollisionError, named_variables, variable_name
from agent.adapters.runners.progress import PlaybookProgress
from agent.adapters.runners.redaction import Redactor
from agent.adapters.runners.supervision import outcome


@pytest.mark.parametrize(
    ("values", "text", "expected"),
    [
        ([], "nothing to hide", "nothing to hide"),
        (["tok"], "a tok and another tok", "a *** and another ***"),
        ([""], "empty values are ignored", "empty values are ignored"),
        (["a.b*c"], "regex a.b*c not aXbbc", "regex *** not aXbbc"),
        (["abc", "abcdef"], "abcdef then abc", "*** then ***"),  # the longer value wins, no "***def"
        (["-----BEGIN KEY-----\nQUJD\n-----END KEY-----"], "line: QUJD", "line: ***"),  # line by line
    ],
)
def test_redaction(values: list[str], text: str, expected: str) -> None:
    assert Redactor(values).text(text) == expected


def test_redaction_of_a_tree_covers_keys_and_nested_values() -> None:
    tree = {"res": {"msg": "x=tok", "tok": [1, "tok", None]}, "n": 3}
    assert Redactor(["tok"]).tree(tree) == {"res": {"msg": "x=***", "***": [1, "***", None]}, "n": 3}


@pytest.mark.parametrize(
    ("item", "prefix", "kept"),
    [
        ("install-docker", "install-docker", True),
        ("swarm_join.v2", "swarm_join.v2", True),
        ("../../etc", "_.._etc-", False),
        ("a/b", "a_b-", False),
        ("..", "", False),
        ("", "", False),
        ("x" * 200, "x" * 60 + "-", False),
    ],
)
def test_artifact_directory_names_are_safe(item: str, prefix: str, kept: bool) -> None:
    name = directory_name(item)
    assert name.startswith(prefix)
    assert (name == item) is kept
    assert "/" not in name
    assert name not in ("", ".", "..")


def test_artifact_directory_names_do_not_collide() -> None:
    assert directory_name("a/b") != directory_name("a_b")


@pytest.mark.parametrize(
    ("name", "variable"),
    [("token", "LCM_SECRET_TOKEN"), ("join-token", "LCM_SECRET_JOIN_TOKEN"), ("ca.pem", "LCM_SECRET_CA_PEM")],
)
def test_variable_names(name: str, variable: str) -> None:
    assert variable_name("LCM_SECRET_", name) == variable


def test_colliding_variable_names_are_refused() -> None:
    with pytest.raises(NameCollisionError, match="'join-token' and 'join_token'"):
        named_variables("LCM_SECRET_", {"join-token": "a", "join_token": "b"})


def _event(kind: str, **data: Any) -> dict[str, Any]:
    return {"event": kind, "event_data": {"task": "t", "host": "h", **data}}


@pytest.mark.parametrize(
    ("event", "kind", "counts"),
    [
        (_event("runner_on_ok", res={"changed": False}), "task_ok", {"ok": 1}),
        (_event("runner_on_ok", res={"changed": True}), "task_changed", {"changed": 1}),
        (_event("runner_on_failed", res={"msg": "boom"}), "task_failed", {"failed": 1}),
        (_event("runner_on_failed", ignore_errors=True, res={}), "task_ignored", {"ignored": 1}),
        (_event("runner_on_skipped"), "task_skipped", {"skipped": 1}),
        (_event("runner_on_unreachable", res={"msg": "no route"}), "task_unreachable", {"unreachable": 1}),
        (_event("verbose"), None, {}),
        ({"event": "playbook_on_stats"}, None, {}),
    ],
)
def test_progress_events(event: dict[str, Any], kind: str | None, counts: dict[str, int]) -> None:
    progress = PlaybookProgress("item")
    published = progress.observe(event)
    assert (published.kind if published else None) == kind
    assert dict(progress.counts) == counts


def test_first_real_failure_is_kept_with_ansibles_reason() -> None:
    progress = PlaybookProgress("item")
    progress.observe(_event("runner_on_failed", ignore_errors=True, res={"msg": "ignored"}))
    progress.observe({"event": "runner_on_failed", "event_data": {"task": "join", "host": "n1",
                                                                  "res": {"msg": "token rejected"}}})
    progress.observe(_event("runner_on_failed", res={"msg": "later"}))
    assert progress.failure is not None
    assert progress.failure.describe() == 'task "join" failed on host n1: token rejected'
    assert progress.summary() == "failed=2 ignored=1"


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        (0, None, (0, "success", "exited with 0")),
        (3, None, (3, "failed", "exited with 3")),
        (-9, None, (1, "failed", "killed by SIGKILL")),
        (-15, "timeout", (124, "timeout", "timed out after 5.0s")),
        (0, "cancelled", (130, "cancelled", "cancelled")),
    ],
)
def test_outcomes(code: int, reason: Any, expected: tuple[int, str, str]) -> None:
    assert outcome(code, reason, 5.0) == expected


SHA = "ab" * 32


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"url": "https://m/x", "sha256": SHA, "dest": "/opt/x"},
         Download("https://m/x", SHA, Path("/opt/x"), 0o644)),
        ({"url": "file:///srv/x", "sha256": SHA.upper(), "dest": "/opt//x", "mode": "0755"},
         Download("file:///srv/x", SHA, Path("/opt/x"), 0o755)),
        ({"url": "ftp://m/x", "sha256": SHA, "dest": "/opt/x"}, "http, https or file URL"),
        ({"sha256": SHA, "dest": "/opt/x"}, "http, https or file URL"),
        ({"url": "https://m/x", "sha256": "abc", "dest": "/opt/x"}, "64 hexadecimal digits"),
        ({"url": "https://m/x", "sha256": SHA, "dest": "opt/x"}, "absolute file path"),
        ({"url": "https://m/x", "sha256": SHA, "dest": "/opt/"}, "absolute file path"),
        ({"url": "https://m/x", "sha256": SHA, "dest": "/opt/x", "mode": "rwx"}, "octal like 0644"),
    ],
)
def test_download_params(params: dict[str, str], expected: Download | str) -> None:
    if isinstance(expected, Download):
        assert parse(params) == expected
    else:
        with pytest.raises(ParamsError, match=expected):
            parse(params)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://mirror/x", "https://mirror/x"),
        ("https://u:pw@mirror:8443/x", "https://u:***@mirror:8443/x"),
        ("https://u@mirror/x", "https://u@mirror/x"),
    ],
)
def test_download_urls_are_shown_without_passwords(url: str, shown: str) -> None:
    assert Download(url, SHA, Path("/x"), 0o644).display_url == shown
