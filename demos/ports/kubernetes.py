"""Kubernetes manifests: Services, the workloads they select, and the ports of their containers."""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import Analysis, ExposedPort, Mapping
from .portspec import PortSpecError, parse_ip, parse_port, parse_protocol

NODE_PORT_RANGE = (30000, 32767)
SERVICE_REACH = {"ClusterIP": "cluster", "NodePort": "node", "LoadBalancer": "load-balancer"}


@dataclass(frozen=True)
class ContainerPort:
    container: str
    port: int
    name: str | None
    protocol: str


@dataclass
class Workload:
    kind: str
    name: str
    namespace: str
    labels: dict
    ports: list[ContainerPort] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.kind}/{self.name}"

    def selected_by(self, selector: dict, namespace: str) -> bool:
        return self.namespace == namespace and all(self.labels.get(key) == value for key, value in selector.items())


def manifests(documents: list[object]) -> list[dict]:
    """Every object with a kind, with the items of `kind: List` taken out."""
    found = []
    for document in documents:
        if not isinstance(document, dict) or "kind" not in document:
            continue
        if document["kind"] == "List" and isinstance(document.get("items"), list):
            found.extend(item for item in document["items"] if isinstance(item, dict) and "kind" in item)
        else:
            found.append(document)
    return found


def is_kubernetes(documents: list[object]) -> bool:
    return any("apiVersion" in manifest for manifest in manifests(documents))


def mapping_at(value: object, *keys: str) -> dict:
    """value[keys[0]][keys[1]]…, or {} where anything on the way is missing or not a mapping."""
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, dict) else {}


def list_at(value: dict, key: str) -> list:
    found = value.get(key)
    return found if isinstance(found, list) else []


def pod_template(manifest: dict) -> dict | None:
    kind = manifest["kind"]
    if kind == "Pod":
        return manifest
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job"):
        return mapping_at(manifest, "spec", "template")
    if kind == "CronJob":
        return mapping_at(manifest, "spec", "jobTemplate", "spec", "template")
    return None


def namespace_of(manifest: dict) -> str:
    return str(mapping_at(manifest, "metadata").get("namespace") or "default")


def analyze_kubernetes(documents: list[object]) -> Analysis:
    analysis = Analysis("kubernetes")
    objects = manifests(documents)
    workloads = [read_workload(analysis, manifest, template) for manifest in objects if (template := pod_template(manifest)) is not None]
    for manifest in objects:
        if manifest["kind"] == "Service":
            add_service(analysis, manifest, workloads)
    return analysis


def read_workload(analysis: Analysis, manifest: dict, template: dict) -> Workload:
    metadata = mapping_at(manifest, "metadata")
    workload = Workload(str(manifest["kind"]), str(metadata.get("name", "unnamed")), namespace_of(manifest), mapping_at(template, "metadata", "labels"))
    for container in list_at(mapping_at(template, "spec"), "containers"):
        if not isinstance(container, dict):
            continue
        container_name = str(container.get("name", "container"))
        for index, entry in enumerate(list_at(container, "ports")):
            place = f"{workload.title} container {container_name} ports[{index}]"
            try:
                add_container_port(analysis, workload, container_name, entry, place)
            except PortSpecError as error:
                analysis.report(error.code, "error", f"{workload.title}: {error.message}", place)
    return workload


def add_container_port(analysis: Analysis, workload: Workload, container: str, entry: object, place: str) -> None:
    if not isinstance(entry, dict):
        raise PortSpecError("invalid-value", "A container port is a mapping like {containerPort: 8080, name: http}.")
    port = parse_port(str(entry.get("containerPort")), what="containerPort")
    protocol = parse_protocol(str(entry.get("protocol", "TCP")))
    name = str(entry["name"]) if entry.get("name") is not None else None
    workload.ports.append(ContainerPort(container, port, name, protocol))
    host_port = entry.get("hostPort")
    if host_port in (None, 0):
        analysis.exposed.append(ExposedPort(workload.title, port, protocol=protocol))
        return
    host_ip = entry.get("hostIP")
    mapping = Mapping(
        source=workload.title,
        container_port=port,
        host_port=parse_port(str(host_port), what="hostPort"),
        host_ip=parse_ip(str(host_ip)) if host_ip else None,
        protocol=protocol,
        place=place,
    )
    analysis.mappings.append(mapping)


def add_service(analysis: Analysis, manifest: dict, workloads: list[Workload]) -> None:
    spec = mapping_at(manifest, "spec")
    name = str(mapping_at(manifest, "metadata").get("name", "unnamed"))
    title = f"Service/{name}"
    service_type = str(spec.get("type") or "ClusterIP")
    if service_type not in SERVICE_REACH:
        if service_type != "ExternalName":
            analysis.report("invalid-value", "error", f"{title}: type {service_type} is unknown; use ClusterIP, NodePort or LoadBalancer.", title)
        return
    selector = spec.get("selector")
    selected = [w for w in workloads if isinstance(selector, dict) and w.selected_by(selector, namespace_of(manifest))]
    places = []
    for index, entry in enumerate(list_at(spec, "ports")):
        place = f"{title} spec.ports[{index}]"
        places.append(place)
        try:
            mapping = service_mapping(name, service_type, entry, selected, place)
        except PortSpecError as error:
            analysis.report(error.code, "error", f"{title}: {error.message}", place)
            continue
        analysis.mappings.append(mapping)
        if mapping.reach != "cluster" and mapping.node_port is None:
            analysis.report(
                "random-host-port", "info",
                f"{title}: no nodePort is given, so the cluster picks a free one in 30000–32767. "
                f"See it with `kubectl get service {name}`, or set nodePort to fix it.",
                place,
            )  # fmt: skip
        if mapping.node_port is not None and not NODE_PORT_RANGE[0] <= mapping.node_port <= NODE_PORT_RANGE[1]:
            analysis.report(
                "nodeport-out-of-range", "error",
                f"{title}: nodePort {mapping.node_port} is outside 30000–32767, the range the cluster hands node ports from, "
                "so the API server refuses the Service. Pick a port in that range, or leave nodePort out to get a free one.",
                place,
            )  # fmt: skip
    report_selection(analysis, title, selector, selected, tuple(places))


def report_selection(analysis: Analysis, title: str, selector: object, selected: list[Workload], places: tuple[str, ...]) -> None:
    if not isinstance(selector, dict) or not selector:
        analysis.report(
            "service-without-selector", "info",
            f"{title} has no selector, so Kubernetes sends its traffic only to endpoints that you create yourself.",
            title,
        )  # fmt: skip
    elif not selected:
        labels = ", ".join(f"{key}={value}" for key, value in selector.items())
        analysis.report(
            "service-selects-nothing", "warning",
            f"{title} sends traffic to pods labelled {labels}, but no Pod or workload here has those labels (in the same namespace), "
            "so calls to it go nowhere. Make spec.selector match spec.template.metadata.labels of the Deployment.",
            title,
            places,
        )  # fmt: skip


def service_mapping(name: str, service_type: str, entry: object, selected: list[Workload], place: str) -> Mapping:
    if not isinstance(entry, dict):
        raise PortSpecError("invalid-value", "A Service port is a mapping like {port: 80, targetPort: 8080}.")
    port = parse_port(str(entry.get("port")), what="Service port")
    protocol = parse_protocol(str(entry.get("protocol", "TCP")))
    target = resolve_target_port(entry.get("targetPort", port), protocol, selected)
    node_port = entry.get("nodePort")
    if node_port not in (None, 0):
        if service_type == "ClusterIP":
            raise PortSpecError("invalid-value", "nodePort only works with type NodePort or LoadBalancer; set the type or remove nodePort.")
        node_port = parse_port(str(node_port), what="nodePort")
    else:
        node_port = None  # the cluster picks one
    reach = SERVICE_REACH[service_type]
    return Mapping(
        source=name,
        container_port=target,
        host_port=node_port if reach == "node" else port,
        protocol=protocol,
        place=place,
        reach=reach,
        node_port=None if reach == "cluster" else node_port,
        targets=tuple(workload.title for workload in selected),
    )


def resolve_target_port(target: object, protocol: str, selected: list[Workload]) -> int:
    """A number is used as it is; a name is looked up among the selected containers' named ports."""
    if isinstance(target, int) or (isinstance(target, str) and target.isascii() and target.isdigit()):
        return parse_port(str(target), what="targetPort")
    for workload in selected:
        for port in workload.ports:
            if port.name == str(target) and port.protocol == protocol:
                return port.port
    where = ", ".join(workload.title for workload in selected) or "any selected pod (the Service selects none here)"
    raise PortSpecError(
        "targetport-unresolved",
        f"targetPort '{target}' names no {protocol} containerPort of {where}. "
        f"Give the container port that name (ports: - name: {target}, containerPort: …) or use the port number.",
    )
