"""The scheduler's pure planner: from one cluster's objects to the writes that move its rollout on."""
