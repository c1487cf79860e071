"""lcm-regional: what runs beside the regional Kubernetes API, not on the machines.

``regional.planning`` decides, purely, which machine runs which steps and when (the rollout, drains,
deletions); ``regional.scheduler`` is the controller (``lcm-scheduler``) that applies those decisions with
one writer per object under a Lease; ``regional.cli`` holds the operator's ``lcmctl`` and the scheduler's
entry point. It builds on the node package's API types, decisions and adapters; the node never imports it.
"""
