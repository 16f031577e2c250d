"""`docker run` and `docker create` command lines: which ports they publish.

The text is only split into words the way a POSIX shell splits them, never executed.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from .diagnostics import join_host_network, report_no_network, report_shared_network
from .model import Analysis, ExposedPort, Mapping
from .portspec import (PortSpec, PortSpecError, format_range, parse_expose, parse_long_form, parse_port_spec, short_syntax,
                       to_mapping)

ENGINES = ("docker", "podman", "nerdctl")
# Commands that run the next one ("sudo -E docker run …"), and the prompts a pasted line may keep.
PREFIX_COMMANDS = ("sudo", "nohup", "time", "exec", "env")
PROMPTS = ("$", "#")
# A command that starts a line or follows ; && ||, so that `command: docker run …` inside YAML does not count.
# No part may match across ; & | or spaces: that keeps the search linear on hostile text.
COMMAND_PATTERN = re.compile(
    rf"(?:^|[;&|])\s*(?:\$\s+)?(?:(?:{'|'.join(PREFIX_COMMANDS)})(?:\s+-[A-Za-z]+)*\s+)*(?:[A-Za-z_]\w*=[^\s;&|]*\s+)*"
    rf"(?:[\w./-]*/)?(?:{'|'.join(ENGINES)})\s+(?:container\s+)?(?:run|create)\b",
    re.MULTILINE,
)

# Options of `docker run`, `podman run` and `nerdctl run` that take a value; every other option is a switch.
VALUE_OPTIONS = frozenset(
    """add-host annotation arch attach auth-file authfile blkio-weight blkio-weight-device cap-add cap-drop
    cert-dir cgroup-conf cgroup-parent cgroupns cgroups chrootdirs cidfile conmon-pidfile
    cosign-certificate-identity cosign-certificate-identity-regexp cosign-certificate-oidc-issuer
    cosign-certificate-oidc-issuer-regexp cosign-key cpu-count cpu-percent cpu-period cpu-quota
    cpu-rt-period cpu-rt-runtime cpu-shares cpus cpuset-cpus cpuset-mems creds decryption-key detach-keys
    device device-cgroup-rule device-read-bps device-read-iops device-write-bps device-write-iops dns
    dns-opt dns-option dns-search domainname entrypoint env env-file env-merge expose gidmap gpus
    group-add group-entry health-cmd health-interval health-log-destination health-max-log-count
    health-max-log-size health-on-failure health-retries health-start-interval health-start-period
    health-startup-cmd health-startup-interval health-startup-retries health-startup-success
    health-startup-timeout health-timeout hostname hosts-file hostuser image-volume init-binary init-path
    io-maxbandwidth io-maxiops ip ip6 ipc ipfs-address isolation kernel-memory label label-file link
    link-local-ip log-driver log-opt mac-address memory memory-reservation memory-swap memory-swappiness
    mount name net net-alias network network-alias oom-score-adj os passwd-entry personality pid pidfile
    pids-limit platform pod pod-id-file preserve-fd preserve-fds publish pull rdt-class requires restart
    retry retry-delay runtime sdnotify seccomp-policy secret security-opt shm-size shm-size-systemd
    stop-signal stop-timeout storage-opt subgidname subuidname sysctl systemd timeout tmpfs tz uidmap
    ulimit umask unsetenv user userns uts variant verify volume volume-driver volumes-from workdir""".split()
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
    after_image: list[str] = field(default_factory=list)  # the container's own command and arguments

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


# The last character of a line that goes on in the next: sh and bash (\), PowerShell (`) and cmd (^).
CONTINUATIONS = ("\\", "`", "^")

# One piece of a shell line. Quoted and plain pieces that touch make up one word;
# "unclosed" matches a quote that the line never closes.
SHELL_PIECE = re.compile(
    r"""(?P<blank>[ \t]+)|(?P<operator>[;&|]+)|'(?P<single>[^']*)'|"(?P<double>(?:[^"\\]|\\.)*)"|\\(?P<escaped>.)"""
    r"""|(?P<plain>[^ \t;&|'"\\]+)|(?P<unclosed>.)""",
    re.DOTALL,
)
DOUBLE_QUOTED_ESCAPE = re.compile(r"""\\([\\"$`])""")


# A port option written after the image, where docker run no longer reads it: "-p 8080:80",
# "-p8080:80", "--publish=8080:80". Its value must look like a port, as the program's own
# flags ("ls -p") may share the letter.
PORT_VALUE = r"\[?\d[\w.:\[\]/-]*"
PORT_OPTION = re.compile(rf"(?:-p|--publish|--expose)(?:=|\s+)?{PORT_VALUE}")
SHELL_DEFAULT = re.compile(r"\$\{\w+:?-([^}$]*)\}")  # ${PORT:-8080}: the shell's default, 8080
BROKEN_CONTINUATION = re.compile(r"\\[ \t]+$")


def broken_continuations(text: str) -> list[int]:
    """The numbers of lines that end in a backslash followed by spaces: the shell does not join the next line."""
    return [number for number, line in enumerate(text.splitlines(), start=1) if BROKEN_CONTINUATION.search(line)]


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with continuations joined, each with the number of its first line."""
    joined: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        start, before = pending or (number, "")
        if line.endswith(CONTINUATIONS):
            pending = (start, before + line[:-1] + " ")
        else:
            pending = None
            joined.append((start, before + line))
    if pending:
        joined.append(pending)
    return joined


def split_line(line: str) -> list[list[str]]:
    """The shell commands of one line as words, split at ; && || and |; ValueError for an unclosed quote."""
    commands: list[list[str]] = [[]]
    word: list[str] | None = None  # the pieces of the word being read, None between words
    for piece in SHELL_PIECE.finditer(line):
        kind = piece.lastgroup
        if kind == "unclosed":
            raise ValueError("No closing quotation")
        if kind in ("blank", "operator"):
            if word is not None:
                commands[-1].append("".join(word))
                word = None
            if kind == "operator":
                commands.append([])
            continue
        if word is None:
            if kind == "plain" and piece[kind].startswith("#"):
                break  # a shell starts a comment only where a word starts
            word = []
        word.append(DOUBLE_QUOTED_ESCAPE.sub(r"\1", piece[kind]) if kind == "double" else piece[kind])
    if word is not None:
        commands[-1].append("".join(word))
    return [command for command in commands if command]


def run_arguments(tokens: list[str]) -> list[str] | None:
    """The arguments after `docker run`, or None when the tokens are another command."""
    rest = list(tokens)
    while rest and (rest[0] in PREFIX_COMMANDS + PROMPTS or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", rest[0])
                    or rest[0].startswith("-") and rest[0] != "-" and not rest[0].startswith("--")):
        rest.pop(0)  # prompts, sudo -E, nohup and VAR=value prefixes
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
    command.after_image = arguments[index + 1 :]
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
    base = (command.image or "unnamed").rsplit("/", 1)[-1].split(":")[0].split("@")[0] or "unnamed"
    taken[base] += 1
    return base if taken[base] == 1 else f"{base}-{taken[base]}"


# What docker run reads of --publish key=value,…: it takes any key and ignores all but these.
PUBLISH_FIELDS = ("published", "target", "protocol")


def parse_publish(value: str) -> tuple[PortSpec, dict[str, str]]:
    """The port spec of a --publish value, and the key=value fields that docker run ignores in it."""
    if "=" not in value:
        return parse_port_spec(value), {}
    fields: dict[str, str] = {}
    for item in value.split(","):
        key, has_value, field_value = item.partition("=")
        if not key or not has_value:
            raise PortSpecError("invalid-value", f"'{item}' is not a key=value field: write published=8080,target=80.")
        fields[key] = field_value
    spec = parse_long_form(fields.get("target"), fields.get("published"), None, fields.get("protocol"), None)
    return spec, {key: field_value for key, field_value in fields.items() if key not in PUBLISH_FIELDS}


def report_ignored_fields(analysis: Analysis, value: str, ignored: dict[str, str], mapping: Mapping) -> None:
    message = f"-p {value}: docker run reads only published, target and protocol from this form and ignores {', '.join(ignored)}."
    if "host_ip" in ignored:
        address = ignored["host_ip"] or "127.0.0.1"
        host = format_range(mapping.host_port, mapping.host_port_end) if mapping.host_port else ""
        message += (" So the port is published on every address of the host"
                    + (f", not on {address} alone." if ignored["host_ip"] else ".")
                    + f" To bind one address, write -p {short_syntax(mapping, host, address)}.")
    elif "mode" in ignored:
        message += " mode is read by a Swarm service's --publish (docker service create), not by docker run."
    analysis.report("publish-field-ignored", "warning", message, mapping.place)


def analyze_docker_run(text: str) -> Analysis:
    analysis = Analysis("docker-run")
    taken: Counter[str] = Counter()
    for number in broken_continuations(text):
        analysis.report(
            "shell-syntax", "warning",
            f"Line {number} ends in a backslash followed by spaces, so the shell ends the command there and runs the "
            "next line as a command of its own. Delete the spaces after the backslash.",
            f"line {number}",
        )  # fmt: skip
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


def misplaced_port_options(arguments: list[str]) -> list[str]:
    """Port options among the words after the image, each with its value."""
    found, index = [], 0
    while index < len(arguments):
        pair = " ".join(arguments[index : index + 2])
        if PORT_OPTION.fullmatch(arguments[index]):
            found.append(arguments[index])
        elif PORT_OPTION.fullmatch(pair):
            found.append(pair)
            index += 1
        index += 1
    return found


def add_command(analysis: Analysis, command: RunCommand, name: str, line_number: int) -> None:
    place = f"{name} (line {line_number})"
    if command.image is None:
        analysis.report("missing-image", "error", f"Line {line_number} names no image, so Docker refuses it: the image comes after the options, e.g. docker run -p 8080:80 nginx.", place)
    if misplaced := misplaced_port_options(command.after_image):
        options = " ".join(misplaced)
        analysis.report(
            "options-after-image", "warning",
            f"{options} {'come' if len(misplaced) > 1 else 'comes'} after the image {command.image}, so Docker hands it to "
            f"the program in the container instead of reading it, and nothing is published. Put it before the image: "
            f"docker run {options} … {command.image}.",
            place,
        )  # fmt: skip
    published = command.publish or command.publish_all
    network = command.network or ""
    exposed = read_expose(analysis, command, name, place)
    if network == "host":
        join_host_network(analysis, name, place, "--network host", [port for _, port in exposed], mapped=bool(published))
        return
    if network == "none":
        if published:
            report_no_network(analysis, name, place, "--network none")
        return
    if published and network.startswith("container:"):
        report_shared_network(analysis, name, network.removeprefix("container:"), place, f"--network {network}")
        return
    explicit: list[Mapping] = []
    for written in command.publish:
        spec_place = f"{place}: -p {written}"
        value = SHELL_DEFAULT.sub(r"\1", written)
        if "$" in value:
            analysis.report(
                "unset-variable", "info",
                f"-p {written} holds a shell variable with no default, which the shell fills in before Docker runs, "
                "so its port is not known here. Write the number, or give a default: ${PORT:-8080}.",
                spec_place,
            )  # fmt: skip
            continue
        if value != written:
            analysis.report("unset-variable", "info", f"-p {written} is read with its default, as -p {value}.", spec_place)
        try:
            spec, ignored = parse_publish(value)
        except PortSpecError as error:
            analysis.report(error.code, "error", f"-p {value}: {error.message}", spec_place)
            continue
        explicit.append(to_mapping(spec, name, spec_place))
        if ignored:
            report_ignored_fields(analysis, value, ignored, explicit[-1])
    analysis.mappings += explicit
    if not command.publish_all:
        analysis.exposed += [port for _, port in exposed]
        return
    publish_all(analysis, command, name, place, explicit, exposed)


def read_expose(analysis: Analysis, command: RunCommand, name: str, place: str) -> list[tuple[str, ExposedPort]]:
    """Each --expose value with its port range; a bad one is reported and left out."""
    exposed = []
    for value in command.expose:
        try:
            exposed.append((value, parse_expose(value, name)))
        except PortSpecError as error:
            analysis.report(error.code, "error", f"--expose {value}: {error.message}", place)
    return exposed


def publish_all(analysis: Analysis, command: RunCommand, name: str, place: str, explicit: list[Mapping], exposed: list[tuple[str, ExposedPort]]) -> None:
    # Docker binds each container port and protocol once: -P gives a random host port only to exposed ports still unbound.
    bound: defaultdict[str, bytearray] = defaultdict(lambda: bytearray(65536))
    for mapping in explicit:
        bind(bound[mapping.protocol], mapping.container_port, mapping.container_port_end or mapping.container_port)
    for value, port in exposed:
        for start, end in unbound_runs(bound[port.protocol], port.port, port.port_end or port.port):
            mapping = Mapping(name, start, end if end != start else None, protocol=port.protocol, place=f"{place}: -P --expose {value}")
            analysis.mappings.append(mapping)
    analysis.report(
        "publish-all", "info",
        f"-P also publishes every port that {command.image or 'the image'} declares with EXPOSE, each on a random host port; "
        f"see them with `docker port {name}` once it runs.",
        place,
    )  # fmt: skip


def bind(bound: bytearray, start: int, end: int) -> None:
    bound[start : end + 1] = b"\x01" * (end - start + 1)


def unbound_runs(bound: bytearray, start: int, end: int) -> list[tuple[int, int]]:
    """The runs of ports from start to end that are not bound yet, as (first, last); binds them all."""
    runs = []
    first = bound.find(0, start, end + 1)
    while first != -1:
        after = bound.find(1, first, end + 1)
        runs.append((first, end if after == -1 else after - 1))
        first = -1 if after == -1 else bound.find(0, after, end + 1)
    bind(bound, start, end)
    return runs
