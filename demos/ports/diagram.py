"""A Mermaid flowchart: host ports on the left, containers and their ports on the right."""

from __future__ import annotations

from .explain import entry_label, port_list, problems_by_place, unpublished
from .model import Analysis
from .portspec import format_range

STYLES = (
    "classDef error fill:#fde2e1,stroke:#c62828,stroke-width:2px,color:#000",
    "classDef warning fill:#fff3e0,stroke:#ef6c00,stroke-width:2px,color:#000",
    "classDef exposed fill:#f1f1f1,stroke:#9e9e9e,stroke-dasharray:4 3,color:#000",
    "classDef shared fill:#e3f2fd,stroke:#1565c0,color:#000",
)
EDGE_COLOURS = {"error": "#c62828", "warning": "#ef6c00"}
NOWHERE = "no matching pods"
MAX_EDGES = 400  # Mermaid refuses a chart of more than 500 edges, and far fewer are already hard to follow


def quoted(label: str) -> str:
    return '"' + label.replace('"', "#quot;") + '"'


class Flowchart:
    """Collects nodes by meaning, so one host port or container port is drawn once."""

    def __init__(self) -> None:
        self.entries: dict[tuple, str] = {}
        self.groups: dict[str, dict[tuple, str]] = {}
        self.group_ids: dict[str, str] = {}
        self.note = ""  # said beside the chart when it leaves mappings out
        self.labels: dict[str, str] = {}
        self.classes: dict[str, str] = {}
        self.edges: list[tuple[str, str, str, str | None]] = []

    def node(self, table: dict[tuple, str], key: tuple, label: str, prefix: str) -> str:
        if key not in table:
            table[key] = f"{prefix}{len(table)}"
            self.labels[table[key]] = label
        return table[key]

    def group_port(self, group: str, key: tuple, label: str) -> str:
        ports = self.groups.setdefault(group, {})
        group_id = self.group_ids.setdefault(group, f"g{len(self.group_ids)}")
        return self.node(ports, key, label, f"{group_id}p")

    def mark(self, node: str, severity: str | None) -> None:
        if severity and self.classes.get(node) != "error":
            self.classes[node] = severity


def build_diagram(analysis: Analysis) -> str:
    chart = Flowchart()
    problems = problems_by_place(analysis.diagnostics)
    left_out = 0
    for mapping in analysis.mappings:
        room = MAX_EDGES - len(chart.edges)
        if room <= 0:
            left_out += 1
            continue
        label = entry_label(mapping)
        entry = chart.node(chart.entries, (mapping.reach, label, mapping.protocol), f"{label}/{mapping.protocol}", "h")
        severity = problems.get(mapping.place)
        chart.mark(entry, severity)
        port_label = f"{format_range(mapping.container_port, mapping.container_port_end)}/{mapping.protocol}"
        for receiver in (mapping.receivers or (NOWHERE,))[:room]:
            port = chart.group_port(receiver, (mapping.container_port, mapping.container_port_end, mapping.protocol), port_label)
            chart.mark(port, severity)
            chart.edges.append((entry, port, mapping.protocol, severity))
    for host_network in analysis.host_network:
        # No mapping: the container's ports are the host's own, drawn as one box on both sides.
        ports = port_list(host_network.ports) or "the ports it listens on"
        entry = chart.node(chart.entries, ("shared", host_network.source), f"{host_network.source}: {ports}", "h")
        chart.classes[entry] = "shared"
        port = chart.group_port(host_network.source, ("shared",), f"{ports} ({host_network.setting})")
        chart.classes[port] = "shared"
        chart.edges.append((entry, port, "same ports", None))
    others = "other pods" if analysis.kind == "kubernetes" else "other containers"
    for exposed in unpublished(analysis):
        key = (exposed.port, exposed.port_end, exposed.protocol)
        label = f"{format_range(exposed.port, exposed.port_end)}/{exposed.protocol} ({others} only)"
        chart.classes[chart.group_port(exposed.source, key, label)] = "exposed"
    if left_out:
        chart.note = f"{left_out} more mappings are not drawn: the table lists them all"
    return render(chart, "Kubernetes cluster" if analysis.kind == "kubernetes" else "Your computer")


def render(chart: Flowchart, host_title: str) -> str:
    lines = ["flowchart LR"]
    if chart.entries:
        lines.append(f"  subgraph host[{quoted(host_title)}]")
        lines += [f"    {node}[{quoted(chart.labels[node])}]" for node in chart.entries.values()]
        lines.append("  end")
    for index, (group, ports) in enumerate(chart.groups.items()):
        lines.append(f"  subgraph g{index}[{quoted(group)}]")
        lines += [f"    {node}[{quoted(chart.labels[node])}]" for node in ports.values()]
        lines.append("  end")
    for entry, port, protocol, _ in chart.edges:
        lines.append(f"  {entry} -->|{protocol}| {port}")
    for number, (*_, severity) in enumerate(chart.edges):
        if severity:
            lines.append(f"  linkStyle {number} stroke:{EDGE_COLOURS[severity]},stroke-width:3px")
    lines += [f"  {style}" for style in STYLES]
    for css_class in ("error", "warning", "exposed", "shared"):
        nodes = [node for node, value in chart.classes.items() if value == css_class]
        if nodes:
            lines.append(f"  class {','.join(nodes)} {css_class}")
    if len(lines) == 1 + len(STYLES):
        lines.insert(1, f"  empty[{quoted('No published or exposed ports')}]")
    if chart.note:
        lines.insert(1, f"  more[{quoted(chart.note)}]")
    return "\n".join(lines) + "\n"
