"""lcm-testbed: the stand-ins for a real site that the tests, the demo and the benchmarks run on.

The API simulator (``testbed.sim``), the real Kubernetes control plane built from Go modules
(``testbed.kube``), the lab (``testbed.lab``: network-namespace nodes, systemd-nspawn machines, mirrors, the
demo's stack), simulated agents for the fleet benchmark and the ``lcmctl`` commands that drive them. It is
a distribution of its own: a machine installs the node package ``agent`` alone, and ``.importlinter``
forbids the node and the regional side to import anything here.
"""

from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
"""The source checkout the testbed runs from: it builds the agent's wheel, the CRDs and playbooks from it."""
