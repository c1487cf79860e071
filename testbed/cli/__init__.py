"""The testbed's ``lcmctl`` command groups (sim, kube, nodes, machines, demo), loaded by ``lcmctl`` through
the ``lcmctl.commands`` entry points this distribution declares, so the operator's tool works without it."""
