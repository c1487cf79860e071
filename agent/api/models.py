"""Typed, immutable views of the lcm.mirantis.com/v1alpha1 kinds and of kaas.mirantis.com/v1alpha1's
ClusterRelease and KaaSRelease.

The JSON names are those of the public Go types in Mirantis/mcc-api, so an object another implementation
wrote reads here and is written back unchanged: every model keeps the fields it does not know
(``extra="allow"``) and ``to_raw`` dumps only what was set, by JSON name, so parse → dump never invents or
drops a field. Only the fields this project acts on are modelled; the others ride along as extras.

Scalars are strict (``"0"`` is not an exit code, ``"true"`` is not a boolean) because a lax parse would hide a
writer's bug and then write the coerced value back. Timestamps stay the strings the API server sent, so a
round trip cannot reformat them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, field_validator
from pydantic.alias_generators import to_camel

GROUP = "lcm.mirantis.com"
VERSION = "v1alpha1"
API_VERSION: Literal["lcm.mirantis.com/v1alpha1"] = "lcm.mirantis.com/v1alpha1"
KAAS_GROUP = "kaas.mirantis.com"
KAAS_API_VERSION = "kaas.mirantis.com/v1alpha1"

MachineType = Literal["control", "worker", "bastion", "unassigned"]
AssignedMachineType = Literal["control", "worker", "bastion"]
Runner = Literal["ansible", "downloader", "bash"]
Phase = Literal["prepare", "deploy", "reconfigure"]
ReleasePhase = Literal["prepare", "deploy", "reconfigure", "decommission"]
"""A release template's phase: ``decommission`` items run only when a machine leaves (docs/swarm.md)."""
MachineState = Literal[
    "Uninitialized", "Pending", "Prepare", "Deploy", "Reconfigure", "Ready", "Upgrade", "Reboot"
]
AddressType = Literal["Hostname", "InternalIP", "ExternalIP", "InternalDNS", "ExternalDNS"]
CordonDrain = Literal["cordondraining", "cordondrained", "uncordoning"]
ClusterStateType = Literal["swarm-drain", "swarm-remove", "cordon-drain", "helm-deployed"]
BoolString = Literal["true", "false"]
ConditionStatus = Literal["True", "False", "Unknown"]
PrepareDeletionPhase = Literal["started", "completed", "aborting", "failed"]
LCMType = Literal["ucp", "byo", "k0s"]
MaintenanceScope = Literal["os", "drain"]
"""Mirantis' ``MaintenanceRequestScope``: ``drain`` moves the node's workloads away and nothing more; ``os``
includes ``drain`` and lets the operator reboot the machine or update its packages."""
WorkloadState = Literal["inactive", "active", "failed"]
"""Mirantis' ``WorkloadState`` of a workload lock: ``active`` forbids disrupting the node (or cluster),
``inactive`` allows it, ``failed`` says its controller could not make it safe (``errorMessage`` says why)."""
MaintenancePhase = Literal["Waiting", "InMaintenance", "Refused"]
"""lcm-agent's extension on a maintenance request: where the scheduler is with it."""

SEMVER_PATTERN = r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$"
"""A release version: semantic versioning 2.0 (the same pattern as the ClusterRelease CRD)."""

LCM_TYPE = "ucp"
"""``spec.lcmType`` of every machine lcm-agent manages (the scheduler writes it, and so do an agent creating
its own machine and ``lcmctl cloud-init provision``): a Swarm cluster is Mirantis' UCP family, whose state
rules (docs/api.md, "lcmType") add one condition to the items': the stack version the node reports
(``status.components.ucpVersion``) is the wanted one (``spec.components.ucpVersion``, the release's
version)."""

PHASES: tuple[Phase, ...] = ("prepare", "deploy", "reconfigure")
"""The phases in the order a machine goes through them."""

EXIT_CODE_RUNNING = -1
"""``exitCode`` of an item the agent has started and not finished. Not 0, so that no reader (ours or a Go
reader, which takes a missing exit code for 0) mistakes a running item for a done one."""


def shared(default: Any) -> Any:
    """A default given to every object that lacks the field, as is. Pydantic deep-copies a model default for
    each object otherwise (the models are frozen, so one empty value serves all): that copy was a third of
    the scheduler's CPU spent parsing LCMMachines."""
    return Field(default_factory=lambda: default)


class InvalidObjectError(ValueError):
    """A raw object does not match the API; ``causes`` pairs each offending field path with what is wrong."""

    def __init__(self, kind: str, name: str, causes: Iterable[tuple[str, str]]) -> None:
        self.kind = kind
        self.name = name
        self.causes = tuple(causes)
        details = "; ".join(f"{path}: {message}" for path, message in self.causes)
        super().__init__(f"invalid {kind} {name!r}: {details}")


def _field_path(loc: Iterable[int | str]) -> str:
    """``("spec", "stateItems", 0, "runner")`` → ``spec.stateItems[0].runner``, the API server's spelling.

    A bad map key is reported at the key (pydantic appends a ``[key]`` marker, left out here).
    """
    path = ""
    for part in loc:
        if part != "[key]":
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path or "<root>"


def _causes(exc: ValidationError) -> list[tuple[str, str]]:
    return [
        (_field_path(err["loc"]), err["msg"].removeprefix("Value error, "))
        for err in exc.errors(include_url=False)
    ]


def _object_name(raw: object) -> str:
    """The name to quote in an error, from an object that may be malformed anywhere, metadata included."""
    meta = raw.get("metadata") if isinstance(raw, Mapping) else None
    name = meta.get("name") if isinstance(meta, Mapping) else None
    return str(name or "<unnamed>")


class ApiModel(BaseModel):
    """Base of every model: camelCase JSON names, unknown fields kept, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, extra="allow", frozen=True
    )


class ObjectMeta(ApiModel):
    """The metadata fields the project reads; the rest (managedFields, ownerReferences...) are kept as is."""

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: StrictInt | None = None
    labels: Mapping[str, str] = {}
    annotations: Mapping[str, str] = {}
    finalizers: tuple[str, ...] = ()
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None


class ApiObject(ApiModel):
    """A whole object of one kind; subclasses pin ``kind`` and name their REST resource."""

    PLURAL: ClassVar[str]
    """The resource name in URLs (``/apis/<GROUP>/v1alpha1/namespaces/NS/<plural>``)."""
    NAMESPACED: ClassVar[bool] = True
    GROUP: ClassVar[str] = GROUP
    """The API group of the kind: ``lcm.mirantis.com``, or ``kaas.mirantis.com`` for the releases."""

    api_version: str = API_VERSION
    kind: str
    metadata: ObjectMeta = shared(ObjectMeta())

    @field_validator("api_version")
    @classmethod
    def _own_group(cls, value: str) -> str:
        wanted = f"{cls.GROUP}/{VERSION}"
        if value != wanted:
            raise ValueError(f"Input should be '{wanted}'")
        return value

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> Self:
        """Parse an object as the API server returns it; raises InvalidObjectError naming every bad field."""
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise InvalidObjectError(
                str(cls.model_fields["kind"].default), _object_name(raw), _causes(exc)
            ) from None

    def to_raw(self) -> dict[str, Any]:
        """The object as JSON-ready data: what was parsed or set, by JSON name, plus apiVersion and kind."""
        body = self.model_dump(mode="json", by_alias=True, exclude_unset=True)
        return {"apiVersion": f"{self.GROUP}/{VERSION}", "kind": self.kind, **body}


class Condition(ApiModel):
    """A standard metav1.Condition."""

    type: str
    status: ConditionStatus
    reason: str
    message: str
    last_transition_time: str
    observed_generation: StrictInt | None = None


_Item = TypeVar("_Item", bound="ItemFields")


def _unique_names(items: tuple[_Item, ...]) -> tuple[_Item, ...]:
    """Status slots are keyed by item name, so two items with one name would share (and fight over) a slot."""
    seen: set[str] = set()
    for item in items:
        if item.name in seen:
            raise ValueError(f"duplicate state item name {item.name!r}")
        seen.add(item.name)
    return items


class ItemFields(ApiModel):
    """What a machine's item and a release's template share: what to run, at which version.

    A machine's item reads whatever Go's decoder reads into ``LCMStateItem`` (any runner string, an empty
    name, no version): Mirantis computes a hash and a state for it, so must we; the agent then refuses to
    run what it cannot (an unknown runner fails the item with a clear message)."""

    runner: str = ""
    name: str = ""
    version: str = ""
    params: Mapping[str, str] = {}


class StateItem(ItemFields):
    """One step of a machine's state: what to run (runner + params), in which phase, at which version.

    An item without a phase keeps none (``""``): in Mirantis' rules it counts in no phase, so it never
    holds a machine back and the agent never runs it (docs/api.md)."""

    phase: str = ""


RFC3339_PATTERN = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
                   r"(Z|[+-][0-9]{2}:[0-9]{2})$")
"""A ``metav1.Time`` as Go reads it (``time.RFC3339``): a Go reader refuses the whole object otherwise."""
Timestamp = Annotated[str, Field(pattern=RFC3339_PATTERN)]


class StateItemStatus(ApiModel):
    """The outcome of one item's latest run, in the item's slot of ``status.stateItemStatuses``. A missing
    hash or exit code reads as Go reads it (``""``, 0)."""

    hash: str = ""
    exit_code: StrictInt = 0
    message: str = ""
    result: Any = None
    attempt: StrictInt = Field(default=0, ge=0)
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None


class AgentConfig(ApiModel):
    """The agent build a machine must run; the agent upgrades itself when ``version`` differs from its own."""

    version: str = ""
    download_url: str = Field(default="", alias="downloadURL")
    sha256: str = ""
    args: tuple[str, ...] = ()


class NodeAddress(ApiModel):
    """A ``v1.NodeAddress``; only the exact type ``InternalIP`` counts (any string reads, as in Go)."""

    type: str
    address: str = ""


class AgentUpgradeStatus(ApiModel):
    error: str = ""
    attempt: StrictInt = 0
    started_at: str | None = None
    finished_at: str | None = None


class RebootStatus(ApiModel):
    """The agent's answer to ``spec.rebootRequired``: ``completed`` once the machine came back."""

    requested_at: str | None = None
    completed: StrictBool = False
    error_message: str = ""


class OSInfo(ApiModel):
    family: str = ""
    platform: str = ""
    name: str = ""
    version: str = ""
    codename: str = ""


class HostInfo(ApiModel):
    """Host facts. ``hardware`` stays plain data: decisions never look inside it, and its typed schema is the
    CRD's (agent.api.host_facts builds it)."""

    boot_time: str | None = None
    architecture: str = ""
    kernel_version: str = ""
    os: OSInfo | None = None
    timezone: str = ""
    hardware: Mapping[str, Any] | None = None
    reboot_required: StrictBool = False
    reboot_reason: str = ""


class Components(ApiModel):
    """``spec.components`` / ``status.components``: for the ``ucp`` family, the stack version wanted and
    the one the node reports converged (docs/api.md, "lcmType")."""

    ucp_version: str = ""


class LCMMachineSpec(ApiModel):
    """The machine's spec. Duplicate item names read (Go reads them; both items then share one status
    slot): the agent refuses to run such a spec (``agent.decisions.state.spec_error``)."""

    cluster_name: str = ""
    type: MachineType = "unassigned"
    lcm_type: str = ""
    components: Components = shared(Components())
    rhel_license_subscription: str = ""
    state_items: tuple[StateItem, ...] = ()
    state_items_overwrites: Mapping[str, Mapping[str, str]] = {}
    release: str = ""
    agent_config: AgentConfig = shared(AgentConfig())
    interface: str = ""
    cidr: str = ""
    reboot_required: StrictBool = False
    maintenance: StrictBool = False
    """The machine's node must be drained and held out of every rollout until this goes false again."""
    halt_agent: StrictBool = False
    prepare_deletion: StrictBool = False


class MachineWaiting(ApiModel):
    """*Extension*, written by the scheduler: why a machine with work to do is not given it now. One
    machine-readable ``reason`` (``WindowClosed``, ``Canary``, ``Paused``...), a ``message`` naming what it
    waits for, and ``since`` (RFC 3339), kept while the reason stays. Absent while the machine moves."""

    reason: str
    message: str = ""
    since: str | None = None


class LCMMachineStatus(ApiModel):
    state: MachineState | None = None
    state_item_statuses: Mapping[str, StateItemStatus] = {}
    addresses: tuple[NodeAddress, ...] = ()
    agent_version: str = ""
    lcm_agent_upgrade_status: AgentUpgradeStatus | None = None
    observed_generation: StrictInt | None = None
    release: str = ""
    interface: str = ""
    reboot: RebootStatus | None = None
    host_info: HostInfo = shared(HostInfo())
    swarm_cordon_drain: CordonDrain | None = None
    swarm_cordon_drain_error: str = ""
    lcm_operation_stuck: StrictBool = False
    maintenance: StrictBool = False
    """The node is drained and in maintenance (written by the scheduler)."""
    prepare_deletion_phase: PrepareDeletionPhase | None = None
    components: Components = shared(Components())
    rhel_license_applied: StrictBool | None = None
    progress: str = ""
    pending_operation: str = ""
    spec_error: str = ""
    conditions: tuple[Condition, ...] = ()
    waiting: MachineWaiting | None = None

    @property
    def internal_ip(self) -> str | None:
        """The first InternalIP address; a machine without one is Uninitialized."""
        return next((a.address for a in self.addresses if a.type == "InternalIP"), None)


class LCMMachine(ApiObject):
    PLURAL: ClassVar[str] = "lcmmachines"

    kind: Literal["LCMMachine"] = "LCMMachine"
    spec: LCMMachineSpec = shared(LCMMachineSpec())
    status: LCMMachineStatus = shared(LCMMachineStatus())


def _unique_names_per_type(
    machine_types: Mapping[str, tuple[StateItem, ...]],
) -> Mapping[str, tuple[StateItem, ...]]:
    for items in machine_types.values():
        _unique_names(items)
    return machine_types


Weekday = Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
WALL_TIME_PATTERN = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"
"""``HH:MM`` on a 24-hour clock; ``24:00`` ends a window at midnight."""
PERCENT_PATTERN = r"^(100|[1-9]?[0-9])%$"


class MaintenanceWindow(ApiModel):
    """*Extension*: weekly hours in which upgrades and reboots may start, in the rollout's time zone. A
    window whose ``end`` is not after its ``start`` runs past midnight into the next day."""

    days: tuple[Weekday, ...]
    start: str = Field(pattern=WALL_TIME_PATTERN)
    end: str = Field(pattern=WALL_TIME_PATTERN)


class AcceptedFailures(ApiModel):
    """*Extension*: the failed machines of the upgrade to ``release`` an operator has accepted; the failure
    budget counts only those beyond ``count``. Bound to the release, so it never widens the next upgrade's."""

    release: str
    count: StrictInt = Field(ge=0)


class RolloutSpec(ApiModel):
    """*Extension* (docs/api.md, "spec.rollout"): canary wave, failure budget and maintenance windows of an
    upgrade. The defaults keep Mirantis' behaviour: no canary, no budget, upgrades start at any time."""

    canary_workers: StrictInt = Field(default=0, ge=0)
    max_failures: int | str | None = None
    """A number of machines, or a percentage of them (``"10%"``)."""
    accepted_failures: AcceptedFailures | None = None
    windows: tuple[MaintenanceWindow, ...] = ()
    time_zone: str = "UTC"

    @field_validator("max_failures", mode="plain")
    @classmethod
    def _count_or_percentage(cls, value: object) -> int | str | None:
        """One check for both forms, so a refusal names the field itself (a union would name its branches)."""
        if value is None or (type(value) is int and value >= 0):
            return value
        if isinstance(value, str) and re.fullmatch(PERCENT_PATTERN, value):
            return value
        raise ValueError('should be a count of machines (0 or more) or a percentage such as "10%"')


class LCMClusterSpec(ApiModel):
    machine_types: Mapping[str, tuple[StateItem, ...]] = {}
    release: str = ""
    max_worker_prepare_count: StrictInt = Field(default=50, ge=1)
    max_worker_upgrade_count: StrictInt = Field(default=1, ge=1)
    max_worker_deploy_count: StrictInt = Field(default=50, ge=1)
    reboot_timeout_seconds: StrictInt | None = Field(default=None, ge=1)
    """lcm-agent's extension: how long a machine may take to come back from a reboot; None: the scheduler's
    ``PlanSettings.reboot_time_limit``."""
    dedicated_control_plane: StrictBool = True
    token_ttl: str | None = Field(default=None, alias="tokenTTL")
    rollout: RolloutSpec = shared(RolloutSpec())
    maintenance: StrictBool = False
    """The cluster is switched into maintenance: no upgrade or settings change reaches its machines."""
    drain_timeout_seconds: StrictInt | None = Field(default=None, ge=1)
    """lcm-agent's extension: how long one drain may take; absent: the scheduler's own limit (30 min)."""

    _unique_item_names = field_validator("machine_types")(_unique_names_per_type)


class LCMClusterStatus(ApiModel):
    requested_nodes: StrictInt = Field(default=0, ge=0)
    ready_nodes: StrictInt = Field(default=0, ge=0)
    release: str = ""
    lcm_operation_stuck: StrictBool = False
    observed_generation: StrictInt | None = None
    progress: str = ""
    conditions: tuple[Condition, ...] = ()
    release_digests: Mapping[str, str] = {}
    maintenance: StrictBool = False


class LCMCluster(ApiObject):
    PLURAL: ClassVar[str] = "lcmclusters"

    kind: Literal["LCMCluster"] = "LCMCluster"
    spec: LCMClusterSpec = shared(LCMClusterSpec())
    status: LCMClusterStatus = shared(LCMClusterStatus())


class LCMClusterStateSpec(ApiModel):
    cluster_name: str = ""
    type: ClusterStateType
    arg: str
    value: BoolString

    @property
    def requested(self) -> bool:
        """True asks for the operation (drain, remove); False asks to undo it (uncordon)."""
        return self.value == "true"


class ClusterStateFailure(ApiModel):
    """lcm-agent's extension: the failed attempts at the value now requested, so that their retries are
    paced from the status (a restarted agent keeps the pacing), as the state items' are."""

    value: BoolString
    """The requested value that failed: a request changed since then starts afresh."""
    count: StrictInt = Field(ge=1)
    """Failed attempts at it in a row."""
    finished_at: str | None = None
    """When the last of them ended."""


class ClusterStateWaiting(ApiModel):
    """lcm-agent's extension: why the executor has not started the requested operation yet, checked again on
    its next pass (``DisruptionBudget``: a service would fall below its budget; ``QuorumGuard``: the
    managers would lose their Raft quorum)."""

    reason: str
    message: str


class LCMClusterStateStatus(ApiModel):
    value: BoolString | None = None
    message: str = ""
    attempt: StrictInt = Field(default=0, ge=0)
    last_failure: ClusterStateFailure | None = None
    """Absent once the requested value is applied."""
    waiting: ClusterStateWaiting | None = None
    """Absent while nothing holds the operation back."""
    warnings: tuple[str, ...] = ()
    """lcm-agent's extension: what the executor could not use as written (a service's bad budget label)."""


class LCMClusterState(ApiObject):
    PLURAL: ClassVar[str] = "lcmclusterstates"

    kind: Literal["LCMClusterState"] = "LCMClusterState"
    spec: LCMClusterStateSpec
    status: LCMClusterStateStatus = shared(LCMClusterStateStatus())


class MaintenanceRequestStatus(ApiModel):
    """lcm-agent's extension (Mirantis' requests have no status): what the scheduler made of the request."""

    phase: MaintenancePhase | None = None
    message: str = ""
    """Why it waits or was refused, naming what it waits for or the names it could not find."""


class NodeMaintenanceRequestSpec(ApiModel):
    node_name: str
    """The node: for lcm-agent, the LCMMachine of that name in the request's namespace."""
    scope: MaintenanceScope | None = None
    cluster_name: str = ""
    """Extension: the LCMCluster the node must belong to (optional; the request is refused otherwise)."""


class NodeMaintenanceRequest(ApiObject):
    PLURAL: ClassVar[str] = "nodemaintenancerequests"

    kind: Literal["NodeMaintenanceRequest"] = "NodeMaintenanceRequest"
    spec: NodeMaintenanceRequestSpec
    status: MaintenanceRequestStatus = shared(MaintenanceRequestStatus())


class ClusterMaintenanceRequestSpec(ApiModel):
    scope: MaintenanceScope | None = None
    cluster_name: str = ""
    """Extension: the LCMCluster; when empty, the one named like the request (Mirantis' convention)."""


class ClusterMaintenanceRequest(ApiObject):
    PLURAL: ClassVar[str] = "clustermaintenancerequests"

    kind: Literal["ClusterMaintenanceRequest"] = "ClusterMaintenanceRequest"
    spec: ClusterMaintenanceRequestSpec = shared(ClusterMaintenanceRequestSpec())
    status: MaintenanceRequestStatus = shared(MaintenanceRequestStatus())


class WorkloadLockStatus(ApiModel):
    state: WorkloadState = "active"
    """Mirantis' default: a lock whose controller has not said otherwise forbids disruption."""
    error_message: str = ""
    release: str = ""


class ClusterWorkloadLockSpec(ApiModel):
    controller_name: str
    cluster_name: str = ""
    """Extension: the LCMCluster the lock is about; empty, every cluster of its namespace."""


class ClusterWorkloadLock(ApiObject):
    PLURAL: ClassVar[str] = "clusterworkloadlocks"

    kind: Literal["ClusterWorkloadLock"] = "ClusterWorkloadLock"
    spec: ClusterWorkloadLockSpec
    status: WorkloadLockStatus = shared(WorkloadLockStatus())


class NodeWorkloadLockSpec(ClusterWorkloadLockSpec):
    node_name: str
    """The node: the LCMMachine of that name in the lock's namespace."""
    node_deletion_request_supported: StrictBool = False


class NodeWorkloadLock(ApiObject):
    PLURAL: ClassVar[str] = "nodeworkloadlocks"

    kind: Literal["NodeWorkloadLock"] = "NodeWorkloadLock"
    spec: NodeWorkloadLockSpec
    status: WorkloadLockStatus = shared(WorkloadLockStatus())


class ReleaseAgent(ApiModel):
    """The agent build of a release, copied into each machine's ``spec.agentConfig``."""

    version: str = Field(min_length=1)
    download_url: str = Field(default="", alias="downloadURL")
    sha256: str = Field(default="", pattern=r"^([0-9a-fA-F]{64})?$")
    """Empty in some Mirantis releases: an agent asked to upgrade to such a build refuses it (nothing to
    verify the download against) and says so in ``status.lcmAgentUpgradeStatus``."""
    args: tuple[str, ...] = ()


class ReleaseItem(ItemFields):
    """A state item template. Its phase may be ``decommission`` (lcm-agent's extension): such items are not
    given to machines in normal operation; the planner adds them, as ``reconfigure`` items, to a machine that
    leaves the cluster. Without a phase (Mirantis allows it) the item counts in no phase and never runs."""

    runner: Runner
    name: str = Field(min_length=1)
    phase: ReleasePhase | None = None


def _templates_are_listed(
    machine_types: Mapping[AssignedMachineType, tuple[ReleaseItem, ...]],
) -> Mapping[AssignedMachineType, tuple[ReleaseItem, ...]]:
    for machine_type, items in machine_types.items():
        if not items:
            raise ValueError(f"machine type {machine_type!r} has no state items")
        _unique_names(items)
    return machine_types


class ClusterReleaseSpec(ApiModel):
    """Mirantis' ClusterReleaseSpec (``pkg/apis/kaas/v1alpha1/release.go``). ``releaseNotes``, ``helm``,
    ``images``, ``allowedNodeLabels`` and ``allowedDistributions`` are kept as they are, not acted on;
    ``upgradeFrom`` is lcm-agent's extension (a KaaSRelease's upgrade paths are the Mirantis way)."""

    version: str = Field(pattern=SEMVER_PATTERN)
    description: str = ""
    agent: ReleaseAgent
    machine_types: Mapping[AssignedMachineType, tuple[ReleaseItem, ...]] = Field(min_length=1)
    lcm_type: str = ""
    upgrade_from: tuple[str, ...] = ()

    _check_templates = field_validator("machine_types")(_templates_are_listed)


IGNORED_RELEASE_FIELDS = ("releaseNotes", "helm", "images", "allowedNodeLabels", "allowedDistributions")
"""Mirantis' ClusterRelease fields lcm-agent keeps but does not act on (the scheduler names them once)."""


class KaasObject(ApiObject):
    """A cluster-scoped kaas.mirantis.com/v1alpha1 kind (the releases)."""

    NAMESPACED: ClassVar[bool] = False
    GROUP: ClassVar[str] = KAAS_GROUP

    api_version: str = KAAS_API_VERSION


class ClusterRelease(KaasObject):
    PLURAL: ClassVar[str] = "clusterreleases"

    kind: Literal["ClusterRelease"] = "ClusterRelease"
    spec: ClusterReleaseSpec


class AvailableUpgrade(ApiModel):
    version: str
    """The ``spec.version`` of a ClusterRelease a cluster on this one may upgrade to."""
    reboot_required: StrictBool = False


class SupportedClusterRelease(ApiModel):
    version: str = ""
    name: str = ""
    """The ClusterRelease's name."""
    available_upgrades: tuple[AvailableUpgrade, ...] = ()


class KaaSReleaseSpec(ApiModel):
    """Mirantis' KaaSReleaseSpec: only the upgrade paths are acted on; management, regional, bootstrap and
    helm fields are kept as they are."""

    version: str = ""
    cluster_release: str = ""
    supported_cluster_releases: tuple[SupportedClusterRelease, ...] = ()


class KaaSRelease(KaasObject):
    PLURAL: ClassVar[str] = "kaasreleases"

    kind: Literal["KaaSRelease"] = "KaaSRelease"
    spec: KaaSReleaseSpec = shared(KaaSReleaseSpec())


class GracefulRebootRequestSpec(ApiModel):
    machines: tuple[str, ...] = ()
    """The LCMMachines to reboot, one after another in the rollout's order; empty: every machine of the
    cluster."""


class GracefulRebootRequestStatus(ApiModel):
    """lcm-agent's extension (Mirantis' kind has no status): what the scheduler made of the request."""

    pending: tuple[str, ...] = ()
    """Machines of the request not rebooted yet (fixed when the request is accepted)."""
    rebooted: tuple[str, ...] = ()
    """Machines rebooted for this request and back."""
    progress: str = ""
    conditions: tuple[Condition, ...] = ()
    """``Accepted``: false (reason ``UnknownMachines``) when the request names machines the cluster does not
    have; nothing is rebooted then."""


class GracefulRebootRequest(KaasObject):
    """Mirantis' ``kaas.mirantis.com/v1alpha1`` GracefulRebootRequest: a rolling reboot of a cluster's
    machines. Namespaced, named like the LCMCluster it concerns; deleted by the scheduler once done."""

    PLURAL: ClassVar[str] = "gracefulrebootrequests"
    NAMESPACED: ClassVar[bool] = True

    kind: Literal["GracefulRebootRequest"] = "GracefulRebootRequest"
    spec: GracefulRebootRequestSpec = shared(GracefulRebootRequestSpec())
    status: GracefulRebootRequestStatus = shared(GracefulRebootRequestStatus())
