"""The UCP-style reconciler: a process of its own (``lcm-agent reconcile``) that converges this node's
engine and swarm membership to their desired state once and exits; the daemon's ``drift_watch`` starts it."""
