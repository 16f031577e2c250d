"""Kubernetes manifests: Services, the workloads they select, and the ports of their containers."""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import Analysis, ExposedPort, HostNetwork, Mapping
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
    check_workload_selector(analysis, manifest, workload)
    pod_spec = mapping_at(template, "spec")
    on_node_network = pod_spec.get("hostNetwork") is True
    for number, container in enumerate(list_at(pod_spec, "containers"), start=1):
        if not isinstance(container, dict):
            continue
        container_name = str(container.get("name") or f"#{number}")
        for index, entry in enumerate(list_at(container, "ports")):
            place = f"{workload.title} container {container_name} ports[{index}]"
            try:
                add_container_port(analysis, workload, container_name, entry, place, on_node_network)
            except PortSpecError as error:
                analysis.report(error.code, "error", f"{workload.title}: {error.message}", place)
    if on_node_network:
        ports = tuple(ExposedPort(workload.title, port.port, protocol=port.protocol) for port in workload.ports)
        analysis.host_network.append(HostNetwork(workload.title, "hostNetwork: true", f"{workload.title} spec.hostNetwork", ports))
    return workload


SELECTED_BY_LABELS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")  # apps/v1: spec.selector is required


def check_workload_selector(analysis: Analysis, manifest: dict, workload: Workload) -> None:
    """A workload manages the pods its spec.selector matches, so the API server refuses a selector
    that its own pod template's labels do not match (a Job and a CronJob make theirs)."""
    selector = mapping_at(manifest, "spec").get("selector")
    if workload.kind == "ReplicationController":  # plain labels, and the template's when left out
        unmatched = unmatched_terms({"matchLabels": selector}, workload.labels)
    elif workload.kind in SELECTED_BY_LABELS:
        if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
            analysis.report(
                "workload-selector-mismatch", "error",
                f"{workload.title} has no spec.selector, and a {workload.kind} needs one: the API server refuses it. "
                "Add spec.selector.matchLabels with the labels of spec.template.metadata.labels.",
                f"{workload.title} spec.selector",
            )  # fmt: skip
            return
        unmatched = unmatched_terms(selector, workload.labels)
    else:
        return
    if unmatched:
        labels = ", ".join(f"{key}={value}" for key, value in workload.labels.items()) or "none"
        analysis.report(
            "workload-selector-mismatch", "error",
            f"{workload.title}: spec.selector asks for {', '.join(unmatched)}, but its pod template's labels are {labels}, "
            "so the API server refuses it (selector does not match template labels). Make spec.selector and "
            "spec.template.metadata.labels the same.",
            f"{workload.title} spec.selector",
        )  # fmt: skip


def unmatched_terms(selector: dict, labels: dict) -> list[str]:
    """The terms of a label selector (matchLabels, matchExpressions) that `labels` does not meet, in words."""
    unmatched = [f"{key}={value}" for key, value in mapping_at(selector, "matchLabels").items() if labels.get(key) != value]
    for term in list_at(selector, "matchExpressions"):
        if not isinstance(term, dict):
            continue
        key, operator, values = term.get("key"), term.get("operator"), [str(v) for v in list_at(term, "values")]
        met = {"In": key in labels and str(labels[key]) in values, "NotIn": key not in labels or str(labels[key]) not in values,
               "Exists": key in labels, "DoesNotExist": key not in labels}.get(str(operator), True)  # fmt: skip
        if not met:
            unmatched.append(f"{key} {operator} {values}" if values else f"{key} {operator}")
    return unmatched


def number_at(entry: dict, key: str, *, what: str = "") -> int | None:
    """The port number under `key`, or None where it is missing; the API server takes only numbers there."""
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        raise PortSpecError("invalid-port", f"{key} '{value}' is quoted, but the API server takes only a number there: remove the quotes.")
    return parse_port(str(value), what=what or key)


def protocol_at(entry: dict) -> str:
    """The entry's protocol, TCP where it is left out; the API server takes TCP, UDP and SCTP in capitals only."""
    written = entry.get("protocol")
    if written is None:
        return "tcp"
    protocol = parse_protocol(str(written))
    if str(written) != protocol.upper():
        raise PortSpecError(
            "invalid-protocol",
            f"protocol '{written}' must be written {protocol.upper()}: the API server takes TCP, UDP and SCTP in capitals only.",
        )
    return protocol


def add_container_port(analysis: Analysis, workload: Workload, container: str, entry: object, place: str, on_node_network: bool) -> None:
    if not isinstance(entry, dict):
        raise PortSpecError("invalid-value", "A container port is a mapping like {containerPort: 8080, name: http}.")
    port = number_at(entry, "containerPort")
    if port is None:
        raise PortSpecError("invalid-port", "Each entry of ports needs containerPort: the port the program listens on.")
    protocol = protocol_at(entry)
    name = str(entry["name"]) if entry.get("name") is not None else None
    workload.ports.append(ContainerPort(container, port, name, protocol))
    if on_node_network:
        return  # the container listens on the node's own ports: nothing to map, nothing kept from the node
    if entry.get("hostPort") in (None, 0):
        analysis.exposed.append(ExposedPort(workload.title, port, protocol=protocol))
        return
    host_ip = entry.get("hostIP")
    mapping = Mapping(
        source=workload.title,
        container_port=port,
        host_port=number_at(entry, "hostPort"),
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
    reach = "headless" if service_type == "ClusterIP" and spec.get("clusterIP") == "None" else SERVICE_REACH[service_type]
    selector = spec.get("selector")
    if isinstance(selector, dict) and isinstance(selector.get("matchLabels"), dict):
        analysis.report(
            "invalid-value", "error",
            f"{title}: a Service's selector is plain labels, such as selector: {{app: web}}; matchLabels belongs to the "
            "selector of a Deployment, and the API server refuses it here. The labels inside it are read below.",
            title,
        )  # fmt: skip
        selector = selector["matchLabels"]
    selected = [w for w in workloads if isinstance(selector, dict) and w.selected_by(selector, namespace_of(manifest))]
    places = []
    for index, entry in enumerate(list_at(spec, "ports")):
        place = f"{title} spec.ports[{index}]"
        places.append(place)
        try:
            mapping = service_mapping(name, reach, entry, selected, place)
        except PortSpecError as error:
            if error.code == "targetport-unresolved" and not workloads:  # the pods are in another file
                target = entry.get("targetPort") if isinstance(entry, dict) else None
                analysis.report(
                    error.code, "info",
                    f"{title}: targetPort '{target}' names a port of the pods, and no Pod or workload is in this text, "
                    "so where it leads is not shown. Paste the Deployment too.",
                    place,
                )  # fmt: skip
            else:
                analysis.report(error.code, "error", f"{title}: {error.message}", place)
            continue
        analysis.mappings.append(mapping)
        report_undeclared_target(analysis, title, mapping, selected)
        if mapping.reach in ("node", "load-balancer") and mapping.node_port is None:
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
    report_unnamed_ports(analysis, title, list_at(spec, "ports"), places)
    report_selection(analysis, title, selector, selected, tuple(places), any_workload=bool(workloads))


def report_unnamed_ports(analysis: Analysis, title: str, ports: list, places: list[str]) -> None:
    """The API server needs a name for each port of a Service with more than one, and no name twice."""
    if len(ports) < 2:
        return
    names = [entry.get("name") if isinstance(entry, dict) else None for entry in ports]
    if None in names or "" in names:
        place = places[next(i for i, name in enumerate(names) if name in (None, ""))]
        analysis.report(
            "invalid-value", "error",
            f"{title} has {len(ports)} ports, so each needs a name (name: http, name: metrics, …): the API server "
            "refuses a Service with more than one port where one is unnamed.",
            place,
        )  # fmt: skip
    elif repeated := sorted({str(name) for name in names if names.count(name) > 1}):
        analysis.report("invalid-value", "error", f"{title} names two ports {repeated[0]}: each port of a Service needs its own name.", title)


def report_undeclared_target(analysis: Analysis, title: str, mapping: Mapping, selected: list[Workload]) -> None:
    """A target port that none of the selected containers declares, while every one of them declares some.

    containerPort is only a declaration (an app may listen on a port it does not list), so this is
    a warning; but a Service aimed at 80 in pods that list only 8080 is the usual "connection refused"."""
    if not selected or not all(workload.ports for workload in selected):
        return
    declared = sorted({port.port for workload in selected for port in workload.ports if port.protocol == mapping.protocol})
    if not declared or mapping.container_port in declared:
        return
    listed = ", ".join(map(str, declared))
    analysis.report(
        "targetport-not-declared", "warning",
        f"{title} sends traffic to port {mapping.container_port}, but the containers it selects declare only {listed}. "
        f"If the app listens on {declared[0]}, set targetPort: {declared[0]}.",
        mapping.place,
    )  # fmt: skip


def report_selection(analysis: Analysis, title: str, selector: object, selected: list[Workload], places: tuple[str, ...], *, any_workload: bool) -> None:
    if not isinstance(selector, dict) or not selector:
        analysis.report(
            "service-without-selector", "info",
            f"{title} has no selector, so Kubernetes sends its traffic only to endpoints that you create yourself.",
            title,
        )  # fmt: skip
    elif not selected and not any_workload:
        labels = ", ".join(f"{key}={value}" for key, value in selector.items())
        analysis.report(
            "service-selects-nothing", "info",
            f"{title} sends traffic to pods labelled {labels}. No Pod or workload is in this text, so which pods it reaches "
            "is not shown: paste the Deployment too to check that its spec.template.metadata.labels match.",
            title,
            places,
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


def service_mapping(name: str, reach: str, entry: object, selected: list[Workload], place: str) -> Mapping:
    if not isinstance(entry, dict):
        raise PortSpecError("invalid-value", "A Service port is a mapping like {port: 80, targetPort: 8080}.")
    port = number_at(entry, "port", what="Service port")
    if port is None:
        raise PortSpecError("invalid-port", "Each entry of a Service's ports needs port: the port callers dial.")
    protocol = protocol_at(entry)
    target = resolve_target_port(entry.get("targetPort", port), protocol, selected)
    node_port = number_at(entry, "nodePort") if entry.get("nodePort") != 0 else None  # 0 or none: the cluster picks one
    if node_port is not None and reach not in ("node", "load-balancer"):
        raise PortSpecError("invalid-value", "nodePort only works with type NodePort or LoadBalancer; set the type or remove nodePort.")
    return Mapping(
        source=name,
        container_port=target,
        host_port=port,
        protocol=protocol,
        place=place,
        reach=reach,
        node_port=node_port,
        targets=tuple(workload.title for workload in selected),
    )


def resolve_target_port(target: object, protocol: str, selected: list[Workload]) -> int:
    """A number is used as it is; a name is looked up among the selected containers' named ports."""
    if isinstance(target, int) and not isinstance(target, bool):
        return parse_port(str(target), what="targetPort")
    if isinstance(target, str) and target.isascii() and target.isdigit():
        raise PortSpecError(
            "invalid-port",
            f"targetPort '{target}' is quoted, so Kubernetes reads it as a port name, and a name needs a letter: "
            "the API server refuses it. Remove the quotes.",
        )
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
