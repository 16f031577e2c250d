"""Compose files: the ports, expose and network_mode of each service."""

from __future__ import annotations

import dataclasses
import re
from typing import NamedTuple

from .diagnostics import join_host_network, report_no_network, report_shared_network
from .model import Analysis, ExposedPort, InputRejected, Mapping
from .portspec import PortSpec, PortSpecError, format_range, parse_expose, parse_long_form, parse_port_spec, short_syntax, to_mapping
from .safe_yaml import Sexagesimal

LONG_SYNTAX_KEYS = ("target", "published", "host_ip", "protocol", "app_protocol", "mode", "name")
DOLLAR_OR_CLOSE = re.compile(r"[$}]")  # } matters only where it closes a default
VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|(?P<plain>[A-Za-z_][A-Za-z0-9_]*)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<operator>\}|:?[-?+]))")
MAX_NESTING = 16  # ${A:-${B:-…}}: real files nest defaults once or twice
REFUSED = "so Compose refuses the whole file with 'invalid interpolation format'"
MAX_EXTENDS_DEPTH = 64  # services that extend services that extend …; real files chain two or three
MAX_INHERITED = 10_000  # ports and expose entries that extends: hands on; real files hand on a few
INHERITED_SETTINGS = ("network_mode", "scale", "deploy", "profiles")  # besides ports and expose, what extends: hands on that matters here


def compose_document(documents: list[object]) -> dict | None:
    return next((d for d in documents if isinstance(d, dict) and isinstance(d.get("services"), dict)), None)


class InvalidInterpolation(ValueError):
    """A value that Compose refuses to interpolate; the message says what is wrong with it."""


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
            try:
                return self.expand(value, 0, 0, place)[0]
            except InvalidInterpolation as error:
                self.analysis.report(
                    "invalid-interpolation", "error",
                    f"'{value}' cannot be filled in: {error}. "
                    "Write ${NAME} for a variable, ${NAME:-default} to give it a default, and $$ for a plain $.",
                    place,
                )  # fmt: skip
        return value

    def expand(self, text: str, start: int, depth: int, place: str) -> tuple[str, int]:
        """The text from start with its variables filled in, and the index where it ends.

        At depth 0 it runs to the end of the text; inside a default (depth > 0) it ends
        at the } that closes the default. Each character is read once, so long text stays fast.
        """
        parts = []
        position = start
        while found := DOLLAR_OR_CLOSE.search(text, position):
            parts.append(text[position : found.start()])
            position = found.end()
            if found[0] == "}":
                if depth:
                    return "".join(parts), found.start()
                parts.append("}")
                continue
            match = VARIABLE.match(text, found.start())
            if match is None:
                wrong = "'${' is not followed by a variable name and a closing '}'" if text.startswith("${", found.start()) else "a '$' starts no variable"
                raise InvalidInterpolation(f"{wrong}, {REFUSED}")
            position = match.end()
            if match["escaped"]:
                parts.append("$")
            elif match["operator"] in (None, "}"):
                parts.append(self.substitute(match["plain"] or match["name"], "", "", place))
            elif depth == MAX_NESTING:
                raise InvalidInterpolation(f"its defaults are nested more than {MAX_NESTING} deep, deeper than this analysis reads")
            else:
                argument, end = self.expand(text, position, depth + 1, place)
                parts.append(self.substitute(match["name"], match["operator"], argument, place))
                position = end + 1
        if depth:
            raise InvalidInterpolation(f"a '${{' is never closed with '}}', {REFUSED}")
        parts.append(text[position:])
        return "".join(parts), len(text)

    def substitute(self, name: str, operator: str, argument: str, place: str) -> str:
        """What ${name<operator>argument} gives with name unset."""
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


class Entry(NamedTuple):
    """One ports or expose entry, as written in service `origin`."""

    origin: str
    place: str
    value: object


class Extends:
    """The settings read here of each service, with `extends:` within the file followed the way Compose merges them."""

    def __init__(self, analysis: Analysis, services: dict) -> None:
        self.analysis = analysis
        self.services = services
        self.resolved: dict[object, dict] = {}
        self.inherited = 0  # entries handed on so far, against MAX_INHERITED

    def settings(self, name: object, chain: tuple = ()) -> dict:
        if name not in self.resolved:
            if len(chain) > MAX_EXTENDS_DEPTH:
                raise InputRejected(f"The services extend each other more than {MAX_EXTENDS_DEPTH} deep; real compose files are far shallower.")
            service = self.services[name]
            own = own_settings(str(name), service)
            base = self.base(name, service.get("extends"), chain)
            self.resolved[name] = own if base is None else self.merge(self.settings(base, (*chain, name)), own)
        return self.resolved[name]

    def base(self, name: object, extends: object, chain: tuple) -> object | None:
        """The service of this file that `extends:` names, or None where there is none to follow (reported)."""
        place = f"services.{name}.extends"
        if extends is None:
            return None
        if isinstance(extends, dict) and extends.get("file") is not None:
            self.analysis.report(
                "extends-other-file", "info",
                f"{name} extends {extends.get('service') or 'a service'} from {extends['file']}, which is not read here, "
                f"so the ports {name} takes over from it are not shown. Paste that service in to see them.",
                place,
            )  # fmt: skip
            return None
        base = extends.get("service") if isinstance(extends, dict) else extends
        if not isinstance(base, str):
            self.analysis.report("invalid-value", "error", f"extends of {name} must name a service: write extends: base, or extends: {{service: base}}.", place)
            return None
        if not isinstance(self.services.get(base), dict):
            self.analysis.report("invalid-value", "error", f"{name} extends {base}, but this file has no service {base}, so Compose refuses the file.", place)
            return None
        followed = (*chain, name)
        if base in followed:
            loop = (*followed[followed.index(base) :], base)
            circle = f"{name} extends itself" if base == name else f"{', '.join(map(str, loop))} extend each other in a loop"
            self.analysis.report(
                "extends-cycle", "error",
                f"{circle}, so Compose refuses the file. Let one of them extend nothing.",
                place,
            )  # fmt: skip
            return None
        return base

    def merge(self, base: dict, own: dict) -> dict:
        """A service's own settings on top of those of the service it extends: lists add up, the rest is replaced."""
        merged = {**base, **own}
        for key in ("ports", "expose"):
            if isinstance(base.get(key), list):
                self.inherited += len(base[key])
                if isinstance(own.get(key), list):
                    merged[key] = base[key] + own[key]
        if self.inherited > MAX_INHERITED:
            raise InputRejected(f"The services hand on more than {MAX_INHERITED:,} ports and expose entries through extends:; paste a part of the file.")
        if isinstance(base.get("deploy"), dict) and isinstance(own.get("deploy"), dict):
            merged["deploy"] = {**base["deploy"], **own["deploy"]}
        return merged


def own_settings(name: str, service: dict) -> dict:
    """The settings read here that the service itself writes, each ports and expose entry with its place."""
    settings = {key: service[key] for key in INHERITED_SETTINGS if service.get(key) is not None}
    for key in ("ports", "expose"):
        entries = service.get(key)
        if isinstance(entries, list):
            settings[key] = [Entry(name, f"services.{name}.{key}[{index}]", entry) for index, entry in enumerate(entries)]
        elif entries is not None:
            settings[key] = entries  # not a list: add_service reports it
    return settings


def analyze_compose(document: dict) -> Analysis:
    analysis = Analysis("compose")
    services = Interpolator(analysis).value(document["services"], "services")
    extends = Extends(analysis, services)
    for name, service in services.items():
        if isinstance(service, dict):
            add_service(analysis, str(name), extends.settings(name), services)
        else:
            analysis.report("invalid-value", "error", f"Service {name} must be a mapping of settings (image:, ports:, …).", f"services.{name}")
    return analysis


def add_service(analysis: Analysis, name: str, settings: dict, services: dict) -> None:
    place = f"services.{name}"
    ports = settings.get("ports") or []
    if not isinstance(ports, list):
        analysis.report("invalid-value", "error", f"ports of {name} must be a list, one '- HOST:CONTAINER' per line.", f"{place}.ports")
        ports = []
    exposed = read_expose(analysis, name, settings)
    network_mode = str(settings.get("network_mode") or "")
    if network_mode == "host":
        join_host_network(analysis, name, f"{place}.network_mode", "network_mode: host", exposed, mapped=bool(ports))
        return
    if network_mode == "none":
        if ports:
            report_no_network(analysis, name, f"{place}.network_mode", "network_mode: none")
        return
    if ports and network_mode.startswith(("service:", "container:")):
        other = network_mode.partition(":")[2]
        report_shared_network(analysis, name, other, f"{place}.network_mode", f"network_mode: {network_mode}")
        ports = []
    if network_mode.startswith("service:") and network_mode.partition(":")[2] not in services:
        analysis.report("invalid-value", "error", f"network_mode: {network_mode} names no service of this file.", f"{place}.network_mode")
    profiles = tuple(str(profile) for profile in as_list(settings.get("profiles")))
    published = [add_port(analysis, name, entry.value, entry_place(name, entry), profiles) for entry in ports]
    check_replicas(analysis, name, settings, [mapping for mapping in published if mapping is not None])
    analysis.exposed += exposed


def read_expose(analysis: Analysis, name: str, settings: dict) -> list[ExposedPort]:
    exposed = []
    for entry in as_list(settings.get("expose")):
        try:
            exposed.append(parse_expose(str(entry.value), name))
        except PortSpecError as error:
            analysis.report(error.code, "error", f"expose {entry.value}: {error.message}", entry_place(name, entry))
    return exposed


def entry_place(name: str, entry: Entry) -> str:
    return entry.place if entry.origin == name else f"{entry.place} (extended by {name})"


def check_replicas(analysis: Analysis, name: str, settings: dict, mappings: list[Mapping]) -> None:
    """Each copy of a scaled service needs host ports of its own; a fixed host port goes to one copy only."""
    setting, replicas = replica_count(settings)
    if replicas < 2:
        return
    for mapping in mappings:
        if mapping.host_port is None:
            continue
        # With one container port, each copy takes a free port of the host range; a container range needs the whole host range.
        served = 1 if mapping.container_port_end is not None else (mapping.host_port_end or mapping.host_port) - mapping.host_port + 1
        if served >= replicas:
            continue
        fixes = f'leave the host port out ("{short_syntax(mapping, "", mapping.host_ip)}") so that each copy gets a free one'
        if mapping.container_port_end is None and mapping.host_port + replicas - 1 <= 65535:
            host_range = format_range(mapping.host_port, mapping.host_port + replicas - 1)
            fixes += f', or give a host range as long as the number of copies ("{short_syntax(mapping, host_range, mapping.host_ip)}")'
        ports = f"port {mapping.host_port}" if mapping.host_port_end is None else f"ports {mapping.host_port}-{mapping.host_port_end}"
        analysis.report(
            "replicas-share-host-port", "error",
            f"{name} runs {replicas} copies ({setting}: {replicas}), but host {ports} can serve only {'one' if served == 1 else served} of them: "
            f"the others fail to start with 'port is already allocated'. To fix it, {fixes}.",
            mapping.place,
            (f"services.{name}.{setting}",),
        )  # fmt: skip


def replica_count(settings: dict) -> tuple[str, int]:
    """How many copies of the service Compose starts, and the setting that says so."""
    deploy = settings.get("deploy")
    for setting, value in (("deploy.replicas", deploy.get("replicas") if isinstance(deploy, dict) else None), ("scale", settings.get("scale"))):
        if isinstance(value, (int, str)) and re.fullmatch(r"[0-9]{1,6}", str(value)):
            return setting, int(value)
    return "", 1


def as_list(value: object) -> list:
    return value if isinstance(value, list) else []


def add_port(analysis: Analysis, name: str, entry: object, place: str, profiles: tuple[str, ...]) -> Mapping | None:
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
        return None
    mapping = dataclasses.replace(to_mapping(spec, name, place), profiles=profiles)
    analysis.mappings.append(mapping)
    return mapping


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
