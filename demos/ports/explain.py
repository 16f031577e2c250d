"""Each mapping in the course's words: ports are phone extensions, the engine is the switchboard."""

from __future__ import annotations

import bisect
import ipaddress

from .model import Analysis, Diagnostic, ExposedPort, HostNetwork, Mapping
from .portspec import format_range, protocol_suffix
from .well_known import describe, lookup


def extensions(start: int, end: int | None) -> str:
    return f"extensions {start}–{end}" if end is not None else f"extension {start}"


def host_side(mapping: Mapping, kind: str) -> str:
    """Who dials what: 'a call to extension 8080 on your computer'."""
    if mapping.reach == "cluster":
        return f"inside the cluster, a call to {extensions(mapping.host_port, None)} of the Service {mapping.source}"
    if mapping.reach == "node":
        node = "the node port that the cluster picks (30000–32767)" if mapping.node_port is None else extensions(mapping.node_port, None)
        return f"a call to {node} on any node of the cluster, or to {extensions(mapping.host_port, None)} of the Service {mapping.source} inside it,"
    if mapping.reach == "load-balancer":
        return f"a call to {extensions(mapping.host_port, None)} on the load balancer of {mapping.source}"
    where = "the node that runs the pod" if kind == "kubernetes" else "your computer"
    if mapping.host_port is None and mapping.container_port_end is not None:
        call = f"a call to one of the free extensions that the engine picks on {where}, one for each container port"
    elif mapping.host_port is None:
        call = f"a call to a free extension that the engine picks on {where}"
    elif mapping.host_port_end is not None and mapping.container_port_end is None:
        call = f"a call to one free extension between {mapping.host_port} and {mapping.host_port_end} on {where}"
    else:
        calls = "calls" if mapping.host_port_end is not None else "a call"
        call = f"{calls} to {extensions(mapping.host_port, mapping.host_port_end)} on {where}"
    if mapping.host_ip is None:
        return call + ", from this or any other machine,"
    if ipaddress.ip_address(mapping.host_ip).is_unspecified:
        return call + f" at any of its addresses ({mapping.host_ip}), from this or any other machine,"
    return call + f" at address {mapping.host_ip}"


def container_side(mapping: Mapping) -> str:
    port = extensions(mapping.container_port, mapping.container_port_end)
    if mapping.reach == "host":
        return f"{port} in the {mapping.source} container"
    if mapping.receivers:
        return f"{port} in the pods of {', '.join(mapping.receivers)}"
    return f"{port} in the pods it selects (none here)"


def sentence(mapping: Mapping, kind: str) -> str:
    if mapping.reach == "headless":
        # No virtual address and no proxy: DNS answers with the pods' own addresses.
        text = (
            f"inside the cluster, the name of the headless Service {mapping.source} stands for the pods' own addresses, "
            f"so callers reach {container_side(mapping)} directly, with no port put through"
        )
    else:
        plural = mapping.reach == "host" and mapping.host_port_end is not None and mapping.container_port_end is not None
        text = f"{host_side(mapping, kind)} {'are' if plural else 'is'} put through to {container_side(mapping)}"
    if mapping.protocol != "tcp":
        text += f" ({mapping.protocol.upper()})"
    known = describe(mapping.container_port)
    if known:
        text += f"; {known}"
    return text[0].upper() + text[1:] + "."


def port_list(ports: tuple[ExposedPort, ...] | list[ExposedPort]) -> str:
    return ", ".join(format_range(p.port, p.port_end) + protocol_suffix(p.protocol) for p in ports)


def extension_words(port: ExposedPort) -> str:
    """'extension 81' or 'extensions 9000–9001/udp'."""
    return extensions(port.port, port.port_end) + protocol_suffix(port.protocol)


def host_network_sentence(host_network: HostNetwork, kind: str) -> str:
    own = "the node's" if kind == "kubernetes" else "this computer's"
    ports = host_network.ports
    single = len(ports) == 1 and ports[0].port_end is None
    answers = f"it answers on {own} own {'extension' if single else 'extensions'} {port_list(ports)}" if ports else f"it answers on whichever of {own} own extensions it listens on"
    return f"{host_network.source} shares {own} network ({host_network.setting}), so nothing is put through: {answers}, from this or any other machine."


def unpublished(analysis: Analysis) -> list[ExposedPort]:
    """The exposed ports, or the parts of exposed ranges, that no mapping puts calls through to:
    only other containers (or pods) call them."""
    # Each receiver's published container ports, as sorted disjoint (start, end) runs, so a port is a bisect
    # away: thousands of exposed ports beside thousands of mappings must not be compared pair by pair.
    published: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for mapping in analysis.mappings:
        for receiver in mapping.receivers:
            published.setdefault((receiver, mapping.protocol), []).append((mapping.container_port, mapping.container_port_end or mapping.container_port))
    runs = {key: merged(spans) for key, spans in published.items()}
    return [
        ExposedPort(port.source, start, end if end != start else None, port.protocol)
        for port in dict.fromkeys(analysis.exposed)  # exposing a port twice says nothing new
        for start, end in uncovered(runs.get((port.source, port.protocol), []), port.port, port.port_end or port.port)
    ]


def merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if runs and start <= runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], max(runs[-1][1], end))
        else:
            runs.append((start, end))
    return runs


def uncovered(runs: list[tuple[int, int]], start: int, end: int, most: int = 16) -> list[tuple[int, int]]:
    """The parts of start..end outside the sorted, disjoint runs. Past `most` runs inside the range the
    rest is kept whole: a range riddled with published ports is no case for a sentence per gap."""
    parts = []
    at = max(bisect.bisect_right(runs, (start, 65536)) - 1, 0)  # the last run starting at or before `start`
    for _ in range(most):
        if start > end:
            return parts
        if at == len(runs) or runs[at][0] > end:
            break
        run_start, run_end = runs[at]
        if run_end >= start:
            if run_start > start:
                parts.append((start, run_start - 1))
            start = run_end + 1
        at += 1
    return parts + [(start, end)] if start <= end else parts


def entry_label(mapping: Mapping) -> str:
    """The host side in a few characters, for the diagram and the table."""
    if mapping.reach == "cluster":
        return f"Service {mapping.source} :{mapping.host_port}"
    if mapping.reach == "load-balancer":
        node = f" (node port {mapping.node_port})" if mapping.node_port else ""
        return f"Service {mapping.source}: load balancer :{mapping.host_port}{node}"
    if mapping.reach == "node":
        return f"Service {mapping.source}: every node :{mapping.node_port or 'random'}"
    if mapping.reach == "headless":
        return f"Service {mapping.source} (headless): the pods' own addresses"
    port = "random" if mapping.host_port is None else format_range(mapping.host_port, mapping.host_port_end)
    address = f"[{mapping.host_ip}]" if mapping.host_ip and ":" in mapping.host_ip else mapping.host_ip
    return f"{address or 'all addresses'}:{port}"


def problems_by_place(diagnostics: list[Diagnostic], severities: tuple[str, ...] = ("error", "warning")) -> dict[str, str]:
    """The worst severity reported for each place, counting the places a problem involves."""
    worst: dict[str, str] = {}
    for diagnostic in diagnostics:
        if diagnostic.severity not in severities:
            continue
        for place in diagnostic.places:
            if worst.get(place) != "error":
                worst[place] = diagnostic.severity
    return worst


TABLE_HEADERS = ["From", "Host side", "Container port", "Protocol", "Usually", "Problems"]


def table_rows(analysis: Analysis) -> list[list[str]]:
    codes: dict[str, list[str]] = {}
    for diagnostic in analysis.diagnostics:
        for place in diagnostic.places:
            codes.setdefault(place, []).append(diagnostic.code)
    rows = []
    for mapping in analysis.mappings:
        known = lookup(mapping.container_port)
        rows.append([
            mapping.place or mapping.source,
            entry_label(mapping),
            format_range(mapping.container_port, mapping.container_port_end),
            mapping.protocol,
            known.name if known else "",
            ", ".join(dict.fromkeys(codes.get(mapping.place, []))),
        ])  # fmt: skip
    return rows


NOTHING_PUBLISHED = "No ports are published: nothing outside the containers can call them."


def sentences(analysis: Analysis) -> list[str]:
    """Where each call goes, a sentence each, in the course's words; none when nothing is published."""
    others = "other pods" if analysis.kind == "kubernetes" else "other containers"
    lines = [sentence(mapping, analysis.kind) for mapping in analysis.mappings]
    lines += [host_network_sentence(host_network, analysis.kind) for host_network in analysis.host_network]
    for port in unpublished(analysis):
        words = extension_words(port)
        verb = "answer" if port.port_end else "answers"
        lines.append(f"{words[0].upper()}{words[1:]} in {port.source} {verb} only calls from {others}; nothing outside can reach it.")
    if any(diagnostic.code == "publish-all" for diagnostic in analysis.diagnostics):
        lines.append("-P publishes every port the image declares with EXPOSE, each on a random host port; those are not in this text.")
    return lines


def sentences_markdown(analysis: Analysis) -> str:
    lines = sentences(analysis)
    return "\n".join(f"- {line}" for line in lines) if lines else NOTHING_PUBLISHED


def diagnostics_markdown(analysis: Analysis) -> str:
    if not analysis.diagnostics:
        return "No problems found."
    return "\n".join(
        f"- **{d.severity}** `{d.code}` at _{d.source}_: {d.message}" for d in analysis.diagnostics
    )
