"""Docker's port syntax, read as strictly as Docker's own parser (go-connections' nat package).

One spec is [ip:][hostPort:]containerPort[/protocol]; each port may be a
range like 8000-8010. Everything that is not valid raises PortSpecError with
a diagnostic code and a message for a learner.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .model import ExposedPort, Mapping

PROTOCOLS = ("tcp", "udp", "sctp")


class PortSpecError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class PortRange:
    start: int
    end: int

    @property
    def is_range(self) -> bool:
        return self.end != self.start

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    @property
    def end_or_none(self) -> int | None:
        return self.end if self.is_range else None


@dataclass(frozen=True)
class PortSpec:
    container: PortRange
    host: PortRange | None = None  # None: the engine picks a free host port
    host_ip: str | None = None
    protocol: str = "tcp"


def parse_port(text: str, *, what: str = "port", allow_zero: bool = False) -> int:
    # Docker reads ports as plain decimal digits (leading zeros allowed): no signs, spaces or names.
    if not (text.isascii() and text.isdigit()):
        raise PortSpecError("invalid-port", f"'{text}' is not a valid {what}: a port is a whole number from 1 to 65535.")
    # Python refuses to convert thousands of digits, and no port needs more than five.
    number = int(text) if len(text.lstrip("0")) <= 5 else 65536
    if number > 65535 or (number == 0 and not allow_zero):
        raise PortSpecError("invalid-port", f"{what[0].upper()}{what[1:]} {number} is out of range: ports go from 1 to 65535.")
    return number


def parse_port_range(text: str, *, what: str = "port") -> PortRange:
    start, dash, end = text.partition("-")
    if not dash:
        port = parse_port(text, what=what)
        return PortRange(port, port)
    first, last = parse_port(start, what=what), parse_port(end, what=what)
    if last < first:
        raise PortSpecError("invalid-port", f"The {what} range {text} runs backwards: write the lower port first, e.g. {last}-{first}.")
    return PortRange(first, last)


def parse_host_port(text: str) -> PortRange | None:
    """An empty host port, or 0, asks the engine to pick a free port."""
    if text == "" or (text.isascii() and text.isdigit() and int(text) == 0):
        return None
    return parse_port_range(text, what="host port")


def parse_protocol(text: str) -> str:
    protocol = text.lower() or "tcp"
    if protocol not in PROTOCOLS:
        raise PortSpecError("invalid-protocol", f"'{text}' is not a port protocol: use tcp (the default), udp or sctp.")
    return protocol


def parse_ip(text: str) -> str:
    """An IPv4 or IPv6 literal, IPv6 optionally in brackets; host names are not allowed."""
    address = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        if ipaddress.ip_address(address).version == 6 and "%" in address:
            raise ValueError("Docker takes no IPv6 zone (%eth0)")
    except ValueError:
        raise PortSpecError(
            "invalid-ip",
            f"'{text}' is not an IP address. Ports are bound to IP addresses, not names: "
            "write 127.0.0.1 for this computer only, or leave the address out for every address.",
        ) from None
    return address


def split_parts(spec: str) -> tuple[str, str, str]:
    """Split into (ip, host port, container port) the way Docker does.

    The last two colon-separated parts are the ports; everything before them is
    the address, which lets unbracketed IPv6 like ::1:80:80 through.
    """
    parts = spec.split(":")
    if len(parts) == 1:
        return "", "", parts[0]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    return ":".join(parts[:-2]), parts[-2], parts[-1]


def parse_port_spec(spec: str) -> PortSpec:
    ip, host_text, container_text = split_parts(spec)
    container_text, _, protocol_text = container_text.partition("/")
    if container_text == "":
        raise PortSpecError("invalid-port", f"'{spec}' names no container port: end it with the port the program listens on, e.g. 8080:80.")
    protocol = parse_protocol(protocol_text)
    container = parse_port_range(container_text, what="container port")
    host_ip = parse_ip(ip) if ip else None
    host = parse_host_port(host_text)
    check_range_lengths(host, container, spec)
    return PortSpec(container, host, host_ip, protocol)


def check_range_lengths(host: PortRange | None, container: PortRange, spec: str) -> None:
    # A host range with a single container port is allowed: the engine picks one free port from it.
    if host is not None and container.is_range and host.length != container.length:
        raise PortSpecError(
            "range-mismatch",
            f"'{spec}' maps {host.length} host port(s) to {container.length} container ports. "
            "Ranges must be the same length, e.g. 8000-8002:9000-9002.",
        )


def format_range(start: int, end: int | None) -> str:
    return f"{start}-{end}" if end is not None else str(start)


def protocol_suffix(protocol: str) -> str:
    """What follows a port in Docker's syntax: nothing for TCP, the default, else /udp or /sctp."""
    return "" if protocol == "tcp" else f"/{protocol}"


def short_syntax(mapping: Mapping, host: str, host_ip: str | None) -> str:
    """`mapping` in the short port syntax with another host side, as a suggested fix writes it:
    `host` a port or range ("" for none), `host_ip` an address or None."""
    address = "" if host_ip is None else f"[{host_ip}]:" if ":" in host_ip else f"{host_ip}:"
    container = format_range(mapping.container_port, mapping.container_port_end) + protocol_suffix(mapping.protocol)
    return f"{address}{host}:{container}" if address or host else container


def parse_long_form(target: str | None, published: str | None, host_ip: str | None, protocol: str | None, mode: str | None) -> PortSpec:
    """The key=value form shared by `--publish target=80,published=8080` and compose's long syntax."""
    if target is None or target == "":
        raise PortSpecError("invalid-port", "The long port syntax needs target: the port the program listens on inside the container.")
    if mode not in (None, "host", "ingress"):
        raise PortSpecError("invalid-value", f"mode '{mode}' is not known: use host or ingress (the default).")
    port = parse_port(target, what="target port")
    container = PortRange(port, port)
    host = parse_host_port(published or "")
    check_range_lengths(host, container, f"published={published},target={target}")
    return PortSpec(container, host, parse_ip(host_ip) if host_ip else None, parse_protocol(protocol or ""))


def to_mapping(spec: PortSpec, source: str, place: str) -> Mapping:
    host = spec.host
    return Mapping(
        source=source,
        container_port=spec.container.start,
        container_port_end=spec.container.end_or_none,
        host_port=host.start if host else None,
        host_port_end=host.end_or_none if host else None,
        host_ip=spec.host_ip,
        protocol=spec.protocol,
        place=place,
    )


def parse_expose(value: str, source: str) -> ExposedPort:
    """port[-end][/protocol], as in --expose and compose's expose."""
    ports, _, protocol = value.partition("/")
    port_range = parse_port_range(ports, what="exposed port")
    return ExposedPort(source, port_range.start, port_range.end_or_none, parse_protocol(protocol))
