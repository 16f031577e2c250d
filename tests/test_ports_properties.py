"""Property-based tests: any text gives an analysis or a clear error, and valid specs parse back."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from demos.ports import PortsInputError, analyze
from demos.ports.portspec import PortRange, PortSpec, parse_port_spec

FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FRAGMENTS = st.sampled_from(
    [
        "docker run ", "podman create ", "-p ", "--publish=", "-P ", "--expose ", "--network host ", "--name x ",
        "\\\n", "\n", " ", "'", '"', ";", "&&", "#", "=", ",", "target=", "published=",
        "services:\n", "  web:\n", "    ports:\n", "      - ", "    expose: ", "    network_mode: ", "host", "service:web",
        "apiVersion: v1\n", "kind: Service\n", "kind: Deployment\n", "spec:\n", "  ports:\n", "  - port: ", "targetPort: ",
        "nodePort: ", "selector: {app: a}\n", "containerPort: ", "name: http\n", "---\n", "- ", "{", "}", "[", "]",
        "&a ", "*a", "${X}", "${X:-8080}", "$$", "0", "80", "8080", "65535", "65536", "-", ":", "::", "/udp", "/TCP", "/ftp",
        "127.0.0.1", "[::1]", "0.0.0.0", "localhost", "22:22", "1000-1001", "\t", "ü", "\x00",
    ]
)  # fmt: skip


def analyse_or_clear_error(text: str) -> None:
    try:
        analysis = analyze(text)
    except PortsInputError as error:
        assert str(error).strip()
        return
    result = analysis.to_dict()
    json.dumps(result)
    assert result["kind"] in ("docker-run", "compose", "kubernetes")
    for mapping in result["mappings"]:
        assert 1 <= mapping["container_port"] <= 65535
        assert mapping["protocol"] in ("tcp", "udp", "sctp")
    for diagnostic in result["diagnostics"]:
        assert diagnostic["severity"] in ("error", "warning", "info") and diagnostic["message"]


@FEW
@given(st.text(max_size=300))
def test_any_text_gives_an_analysis_or_a_clear_error(text):
    analyse_or_clear_error(text)


@FEW
@given(st.lists(FRAGMENTS, max_size=40).map("".join))
def test_text_made_of_port_words_gives_an_analysis_or_a_clear_error(text):
    analyse_or_clear_error(text)


PORTS = st.integers(1, 65535)
IPS = st.one_of(st.none(), st.ip_addresses().map(str))


@st.composite
def port_specs(draw):
    length = draw(st.integers(0, 20))
    container_start = draw(st.integers(1, 65535 - length))
    container = PortRange(container_start, container_start + length)
    host = None
    if draw(st.booleans()):
        host_length = length if length else draw(st.integers(0, 20))  # a host range may feed one container port
        host_start = draw(st.integers(1, 65535 - host_length))
        host = PortRange(host_start, host_start + host_length)
    host_ip = draw(IPS) if host is not None or draw(st.booleans()) else None
    return PortSpec(container, host, host_ip, draw(st.sampled_from(["tcp", "udp", "sctp"])))


def written(port_range: PortRange | None) -> str:
    if port_range is None:
        return ""
    return f"{port_range.start}-{port_range.end}" if port_range.is_range else str(port_range.start)


def spec_text(spec: PortSpec, protocol_case: str) -> str:
    protocol = "/" + getattr(spec.protocol, protocol_case)()
    if spec.host_ip is None:
        host = written(spec.host) + ":" if spec.host else ""
        return host + written(spec.container) + protocol
    address = f"[{spec.host_ip}]" if ":" in spec.host_ip else spec.host_ip
    return f"{address}:{written(spec.host)}:{written(spec.container)}{protocol}"


@FEW
@given(port_specs(), st.sampled_from(["lower", "upper"]))
def test_valid_specs_parse_back(spec, protocol_case):
    assert parse_port_spec(spec_text(spec, protocol_case)) == spec


@FEW
@given(port_specs())
def test_valid_specs_reach_the_mapping_from_docker_run_and_compose(spec):
    text = spec_text(spec, "lower")
    expected = {
        "source": "web",
        "host_ip": spec.host_ip,
        "host_port": spec.host.start if spec.host else None,
        "host_port_end": spec.host.end if spec.host and spec.host.is_range else None,
        "container_port": spec.container.start,
        "container_port_end": spec.container.end if spec.container.is_range else None,
        "protocol": spec.protocol,
    }
    for analysis in (analyze(f"docker run --name web -p '{text}' image"), analyze(f'services:\n  web:\n    ports: ["{text}"]\n')):
        [mapping] = analysis.to_dict()["mappings"]
        assert {key: mapping[key] for key in expected} == expected
