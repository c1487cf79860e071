"""Whether the cluster may be planned from its releases: found, unchanged since first used, upgrade allowed.

Releases never change in place (docs/api.md): a cluster's machines were rendered from what a release said
when they got their items, and silently re-rendering them from an edited release would roll a change out
with no upgrade path, no drain and no record. So the planner records the sha256 of every release the
cluster uses in ``status.releaseDigests`` and refuses to plan, changing nothing, when one no longer matches.
The way out is to restore the release, or to publish the change as a new release and upgrade to it.

A cluster's machines may move from release A to release B when B lists A in ``spec.upgradeFrom``
(lcm-agent's extension) or, as in Mirantis, when a KaaSRelease lists A among its
``supportedClusterReleases`` with B's ``spec.version`` among A's ``availableUpgrades``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agent.api.models import ClusterRelease, KaaSRelease, LCMCluster
from regional.planning.machines import MachineView


@dataclass(frozen=True)
class Refusal:
    """Why the cluster is not planned: a condition reason (CamelCase) and a message for the operator."""

    reason: str
    message: str


@dataclass(frozen=True)
class ReleaseCheck:
    target: ClusterRelease | None
    """The release the cluster must run; None when refused."""
    digests: Mapping[str, str]
    """What ``status.releaseDigests`` should hold: the releases in use (the target, the machines' own)."""
    refusal: Refusal | None = None


def release_digest(release: ClusterRelease) -> str:
    """sha256 of the release's spec as canonical JSON, unknown fields included: any edit changes it."""
    text = json.dumps(release.to_raw().get("spec", {}), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def upgrade_allowed(
    source: str, target: ClusterRelease, kaas_releases: Sequence[KaaSRelease],
) -> bool:
    """Machines on the release named ``source`` may move to ``target``."""
    if source in ((target.metadata.name or ""), *target.spec.upgrade_from):
        return True
    return any(
        supported.name == source
        and any(u.version == target.spec.version for u in supported.available_upgrades)
        for kaas in kaas_releases for supported in kaas.spec.supported_cluster_releases
    )


def check_releases(
    cluster: LCMCluster, releases: Mapping[str, ClusterRelease], views: Sequence[MachineView],
    kaas_releases: Sequence[KaaSRelease] = (),
) -> ReleaseCheck:
    recorded = cluster.status.release_digests
    name = cluster.spec.release
    target = releases.get(name)
    if target is None:
        why = Refusal("ReleaseNotFound", f"ClusterRelease {name!r} does not exist") if name else None
        return ReleaseCheck(None, recorded, why or Refusal("NoRelease", "spec.release is empty"))
    in_use = {name} | {v.spec.release for v in views if v.spec.release}
    digests = {n: release_digest(releases[n]) for n in sorted(in_use) if n in releases}
    for used, digest in digests.items():
        if recorded.get(used, digest) != digest:
            message = (
                f"ClusterRelease {used!r} changed after the cluster started using it; releases never change "
                "in place: restore it, or publish the change as a new release and upgrade to it"
            )
            return ReleaseCheck(None, recorded, Refusal("ReleaseModified", message))
    # A release that went away keeps its record: were it re-created with other content, that must show.
    digests |= {n: recorded[n] for n in in_use if n not in digests and n in recorded}
    for v in views:
        if (v.released and not v.deleting and v.spec.release
                and not upgrade_allowed(v.spec.release, target, kaas_releases)):
            message = (f"{name!r} does not list {v.spec.release!r} (machine {v.name}) in spec.upgradeFrom, "
                       f"nor does a KaaSRelease list {target.spec.version!r} among its available upgrades")
            return ReleaseCheck(None, recorded, Refusal("UpgradeNotAllowed", message))
    return ReleaseCheck(target, digests)
