"""`docker run` and `docker create` command lines: which ports they publish.

The text is only tokenised with shlex, never executed.
"""

from __future__ import annotations

import re
import shlex
from collections import Counter
from dataclasses import dataclass, field

from .diagnostics import report_host_network, report_shared_network
from .model import Analysis, Mapping
from .portspec import PortSpec, PortSpecError, parse_expose, parse_long_form, parse_port_spec, to_mapping

ENGINES = ("docker", "podman", "nerdctl")
# A command that starts a line or follows ; && ||, so that `command: docker run …` inside YAML does not count.
# No part may match across ; & | or spaces: that keeps the search linear on hostile text.
COMMAND_PATTERN = re.compile(
    r"(?:^|[;&|])\s*(?:\$\s+)?(?:sudo\s+)?(?:[A-Za-z_]\w*=[^\s;&|]*\s+)*(?:[\w./-]*/)?(?:docker|podman|nerdctl)\s+(?:container\s+)?(?:run|create)\b",
    re.MULTILINE,
)

# Options of `docker run` that take a value; every other option is a switch.
VALUE_OPTIONS = frozenset(
    """add-host annotation attach blkio-weight blkio-weight-device cap-add cap-drop cgroup-parent cgroupns
    cidfile cpu-count cpu-percent cpu-period cpu-quota cpu-rt-period cpu-rt-runtime cpu-shares cpus
    cpuset-cpus cpuset-mems detach-keys device device-cgroup-rule device-read-bps device-read-iops
    device-write-bps device-write-iops dns dns-option dns-search domainname entrypoint env env-file
    expose gpus group-add health-cmd health-interval health-retries health-start-interval
    health-start-period health-timeout hostname io-maxbandwidth io-maxiops ip ip6 ipc isolation
    kernel-memory label label-file link link-local-ip log-driver log-opt mac-address memory
    memory-reservation memory-swap memory-swappiness mount name net net-alias network network-alias
    oom-score-adj pid pids-limit platform pod publish pull restart runtime security-opt shm-size
    stop-signal stop-timeout storage-opt sysctl tmpfs ulimit user userns uts volume volume-driver
    volumes-from workdir""".split()
)
SHORT_OPTIONS = {
    "a": "attach", "c": "cpu-shares", "e": "env", "h": "hostname", "l": "label", "m": "memory",
    "p": "publish", "u": "user", "v": "volume", "w": "workdir",
    "d": "detach", "i": "interactive", "t": "tty", "P": "publish-all", "q": "quiet",
}  # fmt: skip


@dataclass
class RunCommand:
    image: str | None = None
    name: str | None = None
    network: str | None = None
    publish_all: bool = False
    publish: list[str] = field(default_factory=list)
    expose: list[str] = field(default_factory=list)

    def set_option(self, option: str, value: str) -> None:
        if option == "publish":
            self.publish.append(value)
        elif option == "expose":
            self.expose.append(value)
        elif option == "publish-all":
            self.publish_all = value.lower() not in ("false", "0")
        elif option in ("network", "net"):
            self.network = value
        elif option == "name":
            self.name = value


def looks_like_docker_run(text: str) -> bool:
    return COMMAND_PATTERN.search(text) is not None


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with backslash continuations joined, each with the number of its first line."""
    joined: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        start, before = pending or (number, "")
        if line.endswith("\\"):
            pending = (start, before + line[:-1] + " ")
        else:
            pending = None
            joined.append((start, before + line))
    if pending:
        joined.append(pending)
    return joined


def split_line(line: str) -> list[list[str]]:
    """The shell commands of one line as tokens, split at ; && || and |; ValueError for an unclosed quote."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token.strip(";&|") == "":
            commands.append([])
        else:
            commands[-1].append(token)
    return [command for command in commands if command]


def run_arguments(tokens: list[str]) -> list[str] | None:
    """The arguments after `docker run`, or None when the tokens are another command."""
    rest = list(tokens)
    while rest and (rest[0] in ("sudo", "$", "#") or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", rest[0])):
        rest.pop(0)  # prompts, sudo and VAR=value prefixes
    if not rest or rest[0].rsplit("/", 1)[-1] not in ENGINES:
        return None
    rest.pop(0)
    if rest and rest[0] == "container":
        rest.pop(0)
    if not rest or rest[0] not in ("run", "create"):
        return None
    return rest[1:]


def parse_run_arguments(arguments: list[str]) -> RunCommand:
    command = RunCommand()
    index = 0
    while index < len(arguments):
        argument = arguments[index]
        if argument == "--":
            index += 1
            break
        if not argument.startswith("-") or argument == "-":
            break
        if argument.startswith("--"):
            option, has_value, value = argument[2:].partition("=")
            if option in VALUE_OPTIONS and not has_value:
                index += 1
                value = arguments[index] if index < len(arguments) else ""
            command.set_option(option, value if option in VALUE_OPTIONS or has_value else "true")
        else:
            index = read_short_options(arguments, index, command)
        index += 1
    command.image = arguments[index] if index < len(arguments) else None
    return command


def read_short_options(arguments: list[str], index: int, command: RunCommand) -> int:
    """Read a cluster like -it, -dp 8080:80, -p8080:80 or -p=8080:80; return the last index used."""
    cluster = arguments[index]
    for position in range(1, len(cluster)):
        option = SHORT_OPTIONS.get(cluster[position], cluster[position])
        if option not in VALUE_OPTIONS:
            command.set_option(option, "true")
            continue
        value = cluster[position + 1 :].removeprefix("=")
        if value == "":
            index += 1
            value = arguments[index] if index < len(arguments) else ""
        command.set_option(option, value)
        break
    return index


def container_name(command: RunCommand, taken: Counter[str]) -> str:
    if command.name:
        return command.name
    # Docker would invent a name; the image's short name is easier to recognise.
    base = (command.image or "container").rsplit("/", 1)[-1].split(":")[0].split("@")[0] or "container"
    taken[base] += 1
    return base if taken[base] == 1 else f"{base}-{taken[base]}"


def parse_publish(value: str) -> PortSpec:
    if "=" not in value:
        return parse_port_spec(value)
    fields: dict[str, str] = {}
    for item in value.split(","):
        key, _, field_value = item.partition("=")
        if key not in ("target", "published", "protocol", "mode"):
            raise PortSpecError("invalid-value", f"'{key}' is not a --publish field: use target, published, protocol and mode.")
        fields[key] = field_value
    return parse_long_form(fields.get("target"), fields.get("published"), None, fields.get("protocol"), fields.get("mode"))


def analyze_docker_run(text: str) -> Analysis:
    analysis = Analysis("docker-run")
    taken: Counter[str] = Counter()
    for line_number, line in logical_lines(text):
        try:
            commands = split_line(line)
        except ValueError as error:
            analysis.report("shell-syntax", "error", f"Line {line_number} cannot be split into words ({error}): close every quote you open.", f"line {line_number}")
            continue
        for tokens in commands:
            arguments = run_arguments(tokens)
            if arguments is None:
                continue  # another shell command, like cd or echo
            command = parse_run_arguments(arguments)
            add_command(analysis, command, container_name(command, taken), line_number)
    return analysis


def add_command(analysis: Analysis, command: RunCommand, name: str, line_number: int) -> None:
    place = f"{name} (line {line_number})"
    published = command.publish or command.publish_all
    network = command.network or ""
    if published and network == "host":
        report_host_network(analysis, name, place, "--network host")
        return
    if published and network.startswith("container:"):
        report_shared_network(analysis, name, network.removeprefix("container:"), place, f"--network {network}")
        return
    for value in command.publish:
        spec_place = f"{place}: -p {value}"
        try:
            analysis.mappings.append(to_mapping(parse_publish(value), name, spec_place))
        except PortSpecError as error:
            analysis.report(error.code, "error", f"-p {value}: {error.message}", spec_place)
    add_exposed(analysis, command, name, place)


def add_exposed(analysis: Analysis, command: RunCommand, name: str, place: str) -> None:
    for value in command.expose:
        try:
            exposed = parse_expose(value, name)
        except PortSpecError as error:
            analysis.report(error.code, "error", f"--expose {value}: {error.message}", place)
            continue
        if command.publish_all:
            mapping = Mapping(name, exposed.port, exposed.port_end, protocol=exposed.protocol, place=f"{place}: -P --expose {value}")
            analysis.mappings.append(mapping)
        else:
            analysis.exposed.append(exposed)
    if command.publish_all:
        analysis.report(
            "publish-all", "info",
            f"-P also publishes every port that {command.image or 'the image'} declares with EXPOSE, each on a random host port; "
            f"see them with `docker port {name}` once it runs.",
            place,
        )  # fmt: skip
