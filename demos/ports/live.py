"""The containers of a running Docker-compatible engine, read through its API.

Only lists and inspects: nothing here starts, stops or changes a container.
docker.from_env() honours DOCKER_HOST, so Podman's Docker-compatible socket works too.
"""

from __future__ import annotations

from .diagnostics import check_mappings, join_host_network
from .model import Analysis, ExposedPort, Mapping, PortsInputError
from .portspec import parse_host_port, parse_protocol

KIND = "docker-engine"


class EngineUnavailable(PortsInputError):
    """No Docker-compatible engine answered."""


def connect(timeout: float = 5.0):
    import docker  # imported here so that the parsers work without the SDK

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as error:  # the SDK raises many kinds: DockerException, connection and file errors
        raise EngineUnavailable(
            "No Docker engine answered. Start Docker (or `podman system service`), or point DOCKER_HOST at its socket, "
            f"e.g. unix:///run/user/1000/podman/podman.sock. ({error})"
        ) from None
    return client


def read_containers(client=None) -> Analysis:
    """Every container, running or only created, with its port bindings."""
    client = client or connect()
    analysis = Analysis(KIND)
    try:
        containers = client.containers.list(all=True, ignore_removed=True)
    except Exception as error:
        raise EngineUnavailable(f"The engine did not list its containers: {error}") from None
    for container in containers:
        try:
            add_container(analysis, container.name, container.status, container.attrs)
        except ValueError as error:  # includes PortSpecError: a port the engine reports that Docker's syntax rejects
            analysis.report("invalid-port", "error", f"A port of {container.name} cannot be read: {error}", container.name)
    check_mappings(analysis)
    return analysis


def bindings_of(attrs: dict) -> dict:
    """What is bound now for a running container; what was asked for one not yet started."""
    actual = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
    if any(actual.values()):
        return actual
    return (attrs.get("HostConfig") or {}).get("PortBindings") or {}


def add_container(analysis: Analysis, name: str, status: str, attrs: dict) -> None:
    place = f"{name} ({status})"
    network_mode = (attrs.get("HostConfig") or {}).get("NetworkMode") or ""
    bindings = bindings_of(attrs)
    exposed = [exposed_port(name, port_key) for port_key in (attrs.get("Config") or {}).get("ExposedPorts") or {}]
    if network_mode == "host":
        join_host_network(analysis, name, place, "the host network", exposed, mapped=bool(bindings))
        return
    for port_key, host_bindings in sorted(bindings.items()):
        container_text, _, protocol = port_key.partition("/")
        for binding in host_bindings or []:
            host = parse_host_port(binding.get("HostPort") or "")
            analysis.mappings.append(
                Mapping(
                    source=name,
                    container_port=int(container_text),
                    host_port=host.start if host else None,
                    host_port_end=host.end_or_none if host else None,
                    host_ip=binding.get("HostIp") or None,
                    protocol=parse_protocol(protocol),
                    place=f"{place}: {binding.get('HostIp') or ''}:{binding.get('HostPort') or ''}->{port_key}",
                )
            )
    # Engines list exposed-only ports with no bindings.
    analysis.exposed += [port for port in exposed if not bindings.get(f"{port.port}/{port.protocol}")]


def exposed_port(name: str, port_key: str) -> ExposedPort:
    container_text, _, protocol = port_key.partition("/")
    return ExposedPort(name, int(container_text), protocol=parse_protocol(protocol))
