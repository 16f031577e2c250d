"""Problems that show across mappings, and the messages parsers share.

Parsers report what is wrong with one spec (invalid-port, range-mismatch, …);
`check_mappings` then looks at all mappings together.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass

from .model import Analysis, ExposedPort, HostNetwork, Mapping
from .portspec import format_range, short_syntax
from .well_known import describe

PRIVILEGED_BELOW = 1024


def join_host_network(analysis: Analysis, name: str, place: str, setting: str, ports: list[ExposedPort], mapped: bool) -> None:
    """A container on the host's network listens on the host's own ports; port mappings of it are ignored."""
    analysis.host_network.append(HostNetwork(name, setting, place, tuple(ports)))
    if not mapped:
        return
    analysis.report(
        "host-network-ports-ignored", "warning",
        f"{name} uses {setting}, so it shares the host's ports directly and its port mappings are ignored. "
        f"The program answers on the port it listens on; remove the mappings, or remove {setting} to keep them.",
        place,
    )  # fmt: skip


def report_no_network(analysis: Analysis, name: str, place: str, setting: str) -> None:
    """A container without a network has only its own loopback: the engine takes its mappings and publishes none."""
    analysis.report(
        "no-network-ports-ignored", "warning",
        f"{name} uses {setting}, so it has no network but its own loopback: nothing outside it reaches it, other "
        f"containers included, and none of its port mappings is published. Remove {setting} to publish them.",
        place,
    )  # fmt: skip


def report_shared_network(analysis: Analysis, name: str, other: str, place: str, setting: str) -> None:
    analysis.report(
        "shared-network-ports", "error",
        f"{name} uses {setting}, so it lives in {other}'s network and Docker refuses to publish ports for it. "
        f"Publish the ports on {other} instead.",
        place,
    )  # fmt: skip


@dataclass(frozen=True)
class Claim:
    """A host address, port range and protocol that one mapping holds."""

    mapping: Mapping
    start: int
    end: int
    address: str | None  # None: every address

    def overlaps(self, other: Claim) -> bool:
        return self.start <= other.end and other.start <= self.end and addresses_overlap(self.address, other.address)


def addresses_overlap(first: str | None, second: str | None) -> bool:
    if first is None or second is None:
        return True
    a, b = ipaddress.ip_address(first), ipaddress.ip_address(second)
    if a == b:
        return True
    # 0.0.0.0 listens on every IPv4 address, :: on every IPv6 address.
    return (a.is_unspecified or b.is_unspecified) and a.version == b.version


def claim_of(mapping: Mapping) -> Claim | None:
    if mapping.reach in ("node", "load-balancer"):
        port = mapping.node_port
        return Claim(mapping, port, port, None) if port else None
    if mapping.reach != "host" or mapping.host_port is None:
        return None
    if mapping.host_port_end is not None and mapping.container_port_end is None:
        return None  # the engine picks one free port from the range, so it avoids taken ones
    return Claim(mapping, mapping.host_port, mapping.host_port_end or mapping.host_port, mapping.host_ip)


def describe_claim(claim: Claim) -> str:
    mapping = claim.mapping
    kind = "node port" if mapping.reach in ("node", "load-balancer") else "host port"
    plural = "s" if claim.end != claim.start else ""
    address = f" on {mapping.host_ip}" if mapping.host_ip else ""
    return f"{kind}{plural} {format_range(claim.start, claim.end if plural else None)}{address} ({mapping.place})"


def clash(earlier: Claim, claim: Claim) -> bool:
    if not earlier.overlaps(claim):
        return False
    # The cluster hands out node ports by number: a Service may use one number for TCP and UDP, others not at all.
    node_ports = all(c.mapping.reach in ("node", "load-balancer") for c in (earlier, claim))
    return (node_ports and earlier.mapping.source != claim.mapping.source) or earlier.mapping.protocol == claim.mapping.protocol


def what_fails(earlier: Claim, claim: Claim, kind: str) -> str:
    same_owner = earlier.mapping.source == claim.mapping.source
    if claim.mapping.reach in ("node", "load-balancer"):
        if same_owner:
            return "the API server refuses the Service, as two of its ports ask for one node port"
        return "the API server refuses the second Service with 'provided port is already allocated'"
    if kind == "kubernetes":
        if same_owner:
            return "the API server refuses the pod, as two of its ports ask for one host port"
        return "two such pods cannot run on one node: the scheduler keeps the second Pending until a node with the port free is found"
    return "the second one fails to start with 'port is already allocated'"


def runs_together(first: Mapping, second: Mapping) -> bool:
    """Whether two Compose services always start together: only when their profiles are the same."""
    return first.profiles == second.profiles


def profiles_of(mapping: Mapping) -> str:
    return f"{mapping.source} with profile {' or '.join(mapping.profiles)}" if mapping.profiles else f"{mapping.source} always"


def check_conflicts(analysis: Analysis) -> None:
    """Report each mapping that repeats an earlier one, or takes a host port an earlier one holds."""
    seen: dict[Mapping, Mapping] = {}
    claims: list[Claim] = []
    for claim in host_network_claims(analysis):
        add_claim(analysis, claims, claim)
    for mapping in analysis.mappings:
        key = dataclasses.replace(mapping, place="")
        if key in seen:
            analysis.report(
                "duplicate-mapping", "warning",
                f"{mapping.source} publishes the same mapping twice ({seen[key].place} and {mapping.place}). "
                "It does no harm but says nothing new: delete one of them.",
                mapping.place,
                (seen[key].place,),
            )  # fmt: skip
            continue
        seen[key] = mapping
        claim = claim_of(mapping)
        if claim is not None:
            add_claim(analysis, claims, claim)


def host_network_claims(analysis: Analysis) -> list[Claim]:
    """The host ports that containers on the host's network listen on, where the text names them."""
    claims = []
    for network in analysis.host_network:
        for port in network.ports:
            listens = Mapping(
                source=network.source,
                container_port=port.port,
                container_port_end=port.port_end,
                host_port=port.port,
                host_port_end=port.port_end,
                protocol=port.protocol,
                place=network.place,
            )
            claims.append(Claim(listens, port.port, port.port_end or port.port, None))
    return claims


def add_claim(analysis: Analysis, claims: list[Claim], claim: Claim) -> None:
    clashes = [earlier for earlier in claims if clash(earlier, claim)]
    claims.append(claim)
    if clashes:
        # The surest clash is the one to report: with a service that always starts alongside this one.
        earlier = next((c for c in clashes if runs_together(c.mapping, claim.mapping)), clashes[0])
        report_clash(analysis, earlier, claim)


def report_clash(analysis: Analysis, earlier: Claim, claim: Claim) -> None:
    first, second = earlier.mapping, claim.mapping
    protocols = " and ".join(dict.fromkeys((first.protocol, second.protocol)))
    certain = runs_together(first, second)
    # Compose starts a service with profiles only when one of them is asked for, so two services
    # with different profiles may never run together: the clash is then only a risk.
    when = "" if certain else f" when both start ({profiles_of(first)}, {profiles_of(second)})"
    analysis.report(
        "host-port-conflict", "error" if certain else "warning",
        f"Two mappings want the same extension: {describe_claim(earlier)} and {describe_claim(claim)}, "
        f"{protocols}. Only one program can answer a port, so{when} {what_fails(earlier, claim, analysis.kind)}. "
        "Give one of them another port.",
        second.place,
        (first.place,),
    )  # fmt: skip


def host_ports(mapping: Mapping, offset: int = 0) -> str:
    """The mapping's host port or range, moved by `offset`."""
    end = None if mapping.host_port_end is None else mapping.host_port_end + offset
    return format_range(mapping.host_port + offset, end)


def check_host_side(analysis: Analysis) -> None:
    for mapping in analysis.mappings:
        if mapping.reach != "host":
            continue
        if mapping.host_port is None:
            each = "each of them gets its own free host port" if mapping.container_port_end else "a free one is picked"
            analysis.report(
                "random-host-port", "info",
                f"{mapping.source}: no host port is given for container port {format_range(mapping.container_port, mapping.container_port_end)}, "
                f"so {each} at random each start. Find {'them' if mapping.container_port_end else 'it'} with `docker port {mapping.source}`, "
                "or write the host port to fix it.",
                mapping.place,
            )  # fmt: skip
            continue
        if analysis.kind == "kubernetes":
            report_public_host_port(analysis, mapping)
            continue
        if mapping.host_port < PRIVILEGED_BELOW:
            known = describe(mapping.host_port)
            analysis.report(
                "privileged-port", "info",
                f"Host port {mapping.host_port} is below 1024{f' ({known})' if known else ''}. Rootless Docker and Podman "
                f"may not open it; if starting fails, use a port above 1023, e.g. {short_syntax(mapping, host_ports(mapping, 8000), mapping.host_ip)}.",
                mapping.place,
            )  # fmt: skip
        report_public_bind(analysis, mapping)


def report_public_bind(analysis: Analysis, mapping: Mapping) -> None:
    port = format_range(mapping.host_port, mapping.host_port_end)
    if mapping.host_ip is None:
        analysis.report(
            "public-bind", "warning",
            f"Host port {port} has no address, so it is open on every network address of this computer: other machines "
            "can reach it, and Docker's own firewall rules go around ufw and firewalld. If only you need it, "
            f"write {short_syntax(mapping, host_ports(mapping), '127.0.0.1')}.",
            mapping.place,
        )  # fmt: skip
    elif ipaddress.ip_address(mapping.host_ip).is_unspecified:
        analysis.report(
            "public-bind", "info",
            f"Host port {port} is bound to {mapping.host_ip}, every address, on purpose: other machines can reach it "
            f"and Docker's firewall rules go around ufw. Write {short_syntax(mapping, host_ports(mapping), loopback(mapping.host_ip))} to keep it on this computer.",
            mapping.place,
        )  # fmt: skip


def loopback(address: str) -> str:
    """This computer's own address in the same family: ::1 for an IPv6 bind, 127.0.0.1 for IPv4."""
    return "::1" if ipaddress.ip_address(address).version == 6 else "127.0.0.1"


def report_public_host_port(analysis: Analysis, mapping: Mapping) -> None:
    if mapping.host_ip is not None and not ipaddress.ip_address(mapping.host_ip).is_unspecified:
        return
    analysis.report(
        "public-bind", "warning",
        f"hostPort {mapping.host_port} opens port {mapping.host_port} on every address of the node that runs the pod, "
        "so anyone who can reach the node can call it, and it ties the pod to nodes where that port is free. "
        "A Service (NodePort or LoadBalancer) is the usual way in; to keep it on the node itself, set hostIP: 127.0.0.1.",
        mapping.place,
    )  # fmt: skip


SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


def check_mappings(analysis: Analysis) -> None:
    check_conflicts(analysis)
    check_host_side(analysis)
    analysis.diagnostics.sort(key=lambda diagnostic: SEVERITY_ORDER[diagnostic.severity])
