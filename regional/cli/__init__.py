"""Entry points of the regional side: ``lcmctl`` (the operator's tool) and ``lcm-scheduler``."""
