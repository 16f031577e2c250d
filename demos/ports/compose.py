"""Compose files: the ports, expose and network_mode of each service."""

from __future__ import annotations

import re

from .diagnostics import report_host_network, report_shared_network
from .model import Analysis
from .portspec import PortSpec, PortSpecError, parse_expose, parse_long_form, parse_port_spec, to_mapping
from .safe_yaml import Sexagesimal

LONG_SYNTAX_KEYS = ("target", "published", "host_ip", "protocol", "app_protocol", "mode", "name")
VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")
BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<operator>:?[-?+])(?P<argument>.*))?", re.DOTALL)


def compose_document(documents: list[object]) -> dict | None:
    return next((d for d in documents if isinstance(d, dict) and isinstance(d.get("services"), dict)), None)


class Interpolator:
    """Replaces ${VAR} forms the way Compose does when VAR is not set.

    The analysis has no .env file or shell environment, so every variable counts
    as unset: defaults are used, and each unset variable is reported once.
    """

    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis
        self.reported: set[str] = set()

    def value(self, value: object, place: str) -> object:
        if isinstance(value, dict):
            return {key: self.value(item, f"{place}.{key}") for key, item in value.items()}
        if isinstance(value, list):
            return [self.value(item, f"{place}[{index}]") for index, item in enumerate(value)]
        if isinstance(value, str) and "$" in value:
            return VARIABLE.sub(lambda match: self.replace(match, place), value)
        return value

    def replace(self, match: re.Match, place: str) -> str:
        if match["escaped"]:
            return "$"
        braced = BRACED.fullmatch(match["braced"] or match["plain"])
        if braced is None:
            return match[0]
        name, operator, argument = braced["name"], braced["operator"] or "", braced["argument"] or ""
        if operator.endswith("-"):
            return argument
        if operator.endswith("?"):
            self.report(name, place, "error", f"Compose stops here with '{argument or 'required variable'}' unless {name} is set")
        elif not operator:
            self.report(name, place, "warning", f"Compose uses an empty value unless {name} is set")
        return ""  # unset: ${VAR}, ${VAR:?…} and ${VAR:+…} all give nothing

    def report(self, name: str, place: str, severity: str, consequence: str) -> None:
        if name in self.reported:
            return
        self.reported.add(name)
        self.analysis.report(
            "unset-variable", severity,
            f"{name} is not set here (no .env file or shell environment is read). {consequence}: "
            f"set it in .env, or give a default with ${{{name}:-value}}.",
            place,
        )  # fmt: skip


def analyze_compose(document: dict) -> Analysis:
    analysis = Analysis("compose")
    services = Interpolator(analysis).value(document["services"], "services")
    for name, service in services.items():
        if isinstance(service, dict):
            add_service(analysis, str(name), service, services)
        else:
            analysis.report("invalid-value", "error", f"Service {name} must be a mapping of settings (image:, ports:, …).", f"services.{name}")
    return analysis


def add_service(analysis: Analysis, name: str, service: dict, services: dict) -> None:
    place = f"services.{name}"
    ports = service.get("ports") or []
    if not isinstance(ports, list):
        analysis.report("invalid-value", "error", f"ports of {name} must be a list, one '- HOST:CONTAINER' per line.", f"{place}.ports")
        ports = []
    network_mode = str(service.get("network_mode") or "")
    if ports and network_mode == "host":
        report_host_network(analysis, name, f"{place}.network_mode", "network_mode: host")
        ports = []
    elif ports and network_mode.startswith(("service:", "container:")):
        other = network_mode.partition(":")[2]
        report_shared_network(analysis, name, other, f"{place}.network_mode", f"network_mode: {network_mode}")
        ports = []
    if network_mode.startswith("service:") and network_mode.partition(":")[2] not in services:
        analysis.report("invalid-value", "error", f"network_mode: {network_mode} names no service of this file.", f"{place}.network_mode")
    for index, entry in enumerate(ports):
        add_port(analysis, name, entry, f"{place}.ports[{index}]")
    for index, entry in enumerate(as_list(service.get("expose"))):
        try:
            analysis.exposed.append(parse_expose(str(entry), name))
        except PortSpecError as error:
            analysis.report(error.code, "error", f"expose {entry}: {error.message}", f"{place}.expose[{index}]")


def as_list(value: object) -> list:
    return value if isinstance(value, list) else []


def add_port(analysis: Analysis, name: str, entry: object, place: str) -> None:
    if isinstance(entry, Sexagesimal):
        analysis.report(
            "yaml-base60", "warning",
            f"The unquoted port {entry} is a base-60 number to YAML 1.1 readers (Compose v1, PyYAML tools): "
            f"they read {entry} as {sexagesimal_value(entry)}. "
            f'Quote it: - "{entry}".',
            place,
        )  # fmt: skip
    try:
        spec = parse_entry(entry)
    except PortSpecError as error:
        analysis.report(error.code, "error", f"{name}: {error.message}", place)
        return
    analysis.mappings.append(to_mapping(spec, name, place))


def sexagesimal_value(text: str) -> int:
    value = 0
    for part in text.replace("_", "").lstrip("+-").split(":"):
        value = value * 60 + int(part)
    return -value if text.startswith("-") else value


def parse_entry(entry: object) -> PortSpec:
    if isinstance(entry, dict):
        unknown = [key for key in entry if key not in LONG_SYNTAX_KEYS and not str(key).startswith("x-")]
        if unknown:
            raise PortSpecError("invalid-value", f"'{unknown[0]}' is not a port setting; use {', '.join(LONG_SYNTAX_KEYS)}.")
        text = {key: None if entry.get(key) is None else str(entry[key]) for key in ("target", "published", "host_ip", "protocol", "mode")}
        return parse_long_form(text["target"], text["published"], text["host_ip"], text["protocol"], text["mode"])
    if isinstance(entry, (str, int, float)) and not isinstance(entry, bool):
        return parse_port_spec(str(entry))
    raise PortSpecError("invalid-value", "A port entry is either a string like \"8080:80\" or a mapping with target: and published:.")
