"""What an analysis is made of: port mappings, problems found, and the analysis itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning", "info"]

# Where the caller stands to reach the host side of a mapping.
# "headless": a Service without a cluster IP, whose name resolves to its pods' own addresses.
Reach = Literal["host", "cluster", "headless", "node", "load-balancer"]


class PortsInputError(ValueError):
    """The text cannot be analysed at all; the message says why and what to do."""


class UnrecognizedInput(PortsInputError):
    """The text is neither docker run commands, a compose file nor Kubernetes manifests."""


class InputRejected(PortsInputError):
    """The text is too large, too deep or too self-referencing to read safely."""


@dataclass(frozen=True)
class Mapping:
    """One published port: traffic to the host side is put through to the container side.

    A range is given by its first port and its end (None when it is one port);
    a host port of None means the engine picks a free one.
    """

    source: str
    container_port: int
    container_port_end: int | None = None
    host_port: int | None = None
    host_port_end: int | None = None
    host_ip: str | None = None
    protocol: str = "tcp"
    place: str = ""
    reach: Reach = "host"
    node_port: int | None = None
    targets: tuple[str, ...] = ()
    profiles: tuple[str, ...] = ()  # Compose profiles that start the service; () means it always starts

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "reach": self.reach,
            "host_ip": self.host_ip,
            "host_port": self.host_port,
            "host_port_end": self.host_port_end,
            "node_port": self.node_port,
            "container_port": self.container_port,
            "container_port_end": self.container_port_end,
            "protocol": self.protocol,
            "targets": list(self.targets),
            "profiles": list(self.profiles),
            "place": self.place,
        }

    @property
    def receivers(self) -> tuple[str, ...]:
        """The containers or workloads that answer; a Service forwards to the ones it selects."""
        if self.targets:
            return self.targets
        return (self.source,) if self.reach == "host" else ()


@dataclass(frozen=True)
class ExposedPort:
    """A container port that other containers can call but the host cannot."""

    source: str
    port: int
    port_end: int | None = None
    protocol: str = "tcp"

    def to_dict(self) -> dict:
        return {"source": self.source, "port": self.port, "port_end": self.port_end, "protocol": self.protocol}


@dataclass(frozen=True)
class HostNetwork:
    """A container that shares the host's network: it answers on the host's ports directly, unmapped."""

    source: str
    setting: str  # as written: --network host, network_mode: host, hostNetwork: true
    place: str
    ports: tuple[ExposedPort, ...] = ()  # the ports it is known to listen on, where the text says

    def to_dict(self) -> dict:
        return {"source": self.source, "setting": self.setting, "place": self.place, "ports": [p.to_dict() for p in self.ports]}


@dataclass(frozen=True)
class Diagnostic:
    code: str
    severity: Severity
    message: str
    source: str
    related: tuple[str, ...] = ()  # other places the problem involves, for highlighting

    @property
    def places(self) -> tuple[str, ...]:
        return (self.source, *self.related)

    def to_dict(self) -> dict:
        return {"code": self.code, "severity": self.severity, "message": self.message, "source": self.source, "related": list(self.related)}


@dataclass
class Analysis:
    kind: str
    mappings: list[Mapping] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    exposed: list[ExposedPort] = field(default_factory=list)
    host_network: list[HostNetwork] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "mappings": [m.to_dict() for m in self.mappings],
            "exposed": [e.to_dict() for e in self.exposed],
            "host_network": [h.to_dict() for h in self.host_network],
            "diagnostics": [d.to_dict() for d in self.diagnostics],
        }

    def report(self, code: str, severity: Severity, message: str, source: str, related: tuple[str, ...] = ()) -> None:
        self.diagnostics.append(Diagnostic(code, severity, message, source, related))
