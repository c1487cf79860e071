"""``lcmctl explain``'s tree: the cluster, its conditions, each machine with why it waits or is stuck."""

from __future__ import annotations

from typing import Any

from regional.cli.ctl import build_parser
from regional.cli.explain import tree

CLUSTER: dict[str, Any] = {
    "metadata": {"name": "demo", "namespace": "ns"},
    "spec": {"release": "swarm-1.1.0"},
    "status": {"release": "swarm-1.0.0", "progress": "halted, upgrade to swarm-1.1.0 1/3", "conditions": [
        {"type": "OperationStuck", "status": "True", "reason": "Stuck",
         "message": "w0: item docker-engine failed 5 times or more: E: no engine"},
        {"type": "Paused", "status": "False", "reason": "NotPaused", "message": ""},
    ]},
}


def _machine(name: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"type": "worker", "clusterName": "demo",
                                                 "release": "swarm-1.0.0"},
            "status": {"state": "Ready", "progress": "4/4", **status}}


MACHINES = [
    _machine("w1", waiting={"reason": "Halted", "message": "the rollout is halted",
                            "since": "2026-12-07T10:00:00Z"}),
    _machine("w0", state="Deploy", progress="1/4", lcmOperationStuck=True, swarmCordonDrain="cordondrained",
             stateItemStatuses={"docker-engine": {"exitCode": 2, "message": "E: no\nengine",
                                                  "finishedAt": "2026-12-07T10:00:00Z"}}),
]


def test_the_cluster_tree_names_conditions_and_each_machines_reasons() -> None:
    assert tree(CLUSTER, MACHINES) == [
        "LCMCluster ns/demo  halted, upgrade to swarm-1.1.0 1/3  (release swarm-1.1.0, applied swarm-1.0.0)",
        "├─ Conditions (2)",
        "│  ├─ OperationStuck: True Stuck: w0: item docker-engine failed 5 times or more: E: no engine",
        "│  └─ Paused: False NotPaused",
        "└─ Machines (2, 1 waiting)",
        "   ├─ w0  worker  Deploy  items 1/4  release swarm-1.0.0",
        "   │  stuck: item docker-engine failed 5 times or more: E: no engine",
        "   │  last error: docker-engine: E: no engine",
        "   │  swarm node: cordondrained",
        "   └─ w1  worker  Ready  items 4/4  release swarm-1.0.0",
        "      waiting: Halted since 2026-12-07T10:00:00Z: the rollout is halted",
    ]


def test_one_machine_shows_its_branch_only() -> None:
    assert tree(CLUSTER, MACHINES, only="w1")[-3:] == [
        "└─ Machine w1",
        "   └─ w1  worker  Ready  items 4/4  release swarm-1.0.0",
        "      waiting: Halted since 2026-12-07T10:00:00Z: the rollout is halted",
    ]


def test_a_machine_outside_the_cluster_says_so() -> None:
    assert tree(CLUSTER, MACHINES, only="w9")[-1] == "└─ Machine w9: not found in this cluster"
    assert tree(None, [], only="w9")[0].startswith("LCMCluster: not found")


def test_explain_is_a_command_of_lcmctl() -> None:
    args = build_parser().parse_args(["explain", "--namespace", "ns", "--cluster", "demo"])
    assert (args.group, args.cluster, args.machine) == ("explain", "demo", None)
