"""The docker run and Compose parsers on input that real commands and files contain."""

import time

from demos.ports import analyze
from tests.test_ports_analyze import codes, diagnostic, mappings

# docker run


def test_hash_inside_a_word_does_not_start_a_comment():
    assert mappings("docker run -d -e TOKEN=abc#def -p 8080:80 myimage") == [("myimage", None, 8080, None, 80, None, "tcp")]
    assert mappings("docker run -e 'X=#' -e Y=\"#\" -p 8081:80 img") == [("img", None, 8081, None, 80, None, "tcp")]
    # A word that starts with an unquoted # begins a comment, as in a shell.
    assert mappings("docker run -p 80:80 nginx # -p 1:1") == [("nginx", None, 80, None, 80, None, "tcp")]
    assert mappings("cd app;# docker run -p 1:1 x\ndocker run -p 81:80 web") == [("web", None, 81, None, 80, None, "tcp")]


def test_quoted_empty_or_operator_words_are_arguments():
    assert mappings('docker run --entrypoint "" -p 8080:80 myimage sh') == [("myimage", None, 8080, None, 80, None, "tcp")]
    assert mappings("docker run --entrypoint '' -p 8080:80 myimage sh") == [("myimage", None, 8080, None, 80, None, "tcp")]
    assert mappings('docker run --entrypoint ";" -p 8080:80 myimage') == [("myimage", None, 8080, None, 80, None, "tcp")]
    assert mappings("docker run -p 80:80 a;docker run -p 81:80 b && docker run -p 82:80 c") == [
        ("a", None, 80, None, 80, None, "tcp"),
        ("b", None, 81, None, 80, None, "tcp"),
        ("c", None, 82, None, 80, None, "tcp"),
    ]
    assert codes("docker run -e 'A=b -p 80:80 img") == ["shell-syntax"]


def test_publish_all_leaves_out_exposed_ports_that_p_publishes():
    assert mappings("docker run -P --expose 80 -p 8080:80 nginx") == [("nginx", None, 8080, None, 80, None, "tcp")]
    text = "docker run -P --expose 7000-7003 --expose 53/udp --expose 7000 -p 8001-8002:7001-7002 -p 53:53 --name app img"
    assert mappings(text) == [
        ("app", None, 8001, 8002, 7001, 7002, "tcp"),
        ("app", None, 53, None, 53, None, "tcp"),
        ("app", None, None, None, 7000, None, "tcp"),  # the ports of 7000-7003 that -p leaves
        ("app", None, None, None, 7003, None, "tcp"),
        ("app", None, None, None, 53, None, "udp"),  # -p 53:53 is tcp only
    ]
    assert "publish-all" in codes(text)


def test_value_options_of_podman_and_nerdctl():
    assert mappings("podman run --secret mysecret -p 8080:80 nginx") == [("nginx", None, 8080, None, 80, None, "tcp")]
    text = "podman run --arch arm64 --hosts-file none --health-startup-cmd true --retry 3 --tz UTC --umask 077 --userns keep-id -p 8081:80 nginx"
    assert mappings(text) == [("nginx", None, 8081, None, 80, None, "tcp")]
    text = "nerdctl run --verify cosign --cosign-key key.pub --systemd always --init-binary tini -p 8082:80 nginx"
    assert mappings(text) == [("nginx", None, 8082, None, 80, None, "tcp")]


def test_windows_line_continuations_join_lines():
    powershell = "docker run -d `\n  --name web `\n  -p 8080:80 `\n  nginx"
    cmd = "docker run -d ^\r\n  --name web ^\r\n  -p 8080:80 ^\r\n  nginx"
    for text in (powershell, cmd):
        assert mappings(text) == [("web", None, 8080, None, 80, None, "tcp")]


# Compose interpolation


def test_empty_braces_are_invalid_interpolation():
    for text in (
        'services:\n  web:\n    ports: ["${}:80", "8080:80"]\n',
        'services:\n  web:\n    environment: ["A=${}"]\n    ports: ["8080:80"]\n',
    ):
        found = diagnostic(text, "invalid-interpolation")
        assert found.severity == "error" and "invalid interpolation format" in found.message
        assert "${NAME}" in found.message and "${NAME:-default}" in found.message
        assert ("web", None, 8080, None, 80, None, "tcp") in mappings(text)


def test_nested_defaults_are_interpolated():
    text = 'services:\n  web:\n    ports: ["${HOST_PORT:-${DEFAULT:-8080}}:80", "${A:-${B:-${C}}}90:90"]\n'
    assert mappings(text) == [("web", None, 8080, None, 80, None, "tcp"), ("web", None, 90, None, 90, None, "tcp")]
    assert [d.message.split()[0] for d in analyze(text).diagnostics if d.code == "unset-variable"] == ["C"]
    assert "invalid-interpolation" in codes('services:\n  web:\n    ports: ["${HOST_PORT:-80:80"]\n')
    assert "never closed" in diagnostic('services:\n  web:\n    ports: ["${HOST_PORT:-80:80"]\n', "invalid-interpolation").message


def test_deeply_nested_defaults_are_refused_quickly():
    for text in ("${a:-" * 5000, "${a:-" * 5000 + "}" * 5000):
        started = time.perf_counter()
        found = diagnostic(f'services:\n  web:\n    ports: ["{text}"]\n', "invalid-interpolation")
        assert time.perf_counter() - started < 2
        assert "nested more than 16" in found.message


# Compose extends and replicas


def test_extends_within_the_file_inherits_ports():
    text = """
services:
  base:
    image: nginx
    ports: ["127.0.0.1::80"]
    expose: ["9000"]
  web:
    extends: {service: base}
    ports: ["8443:443"]
  api:
    extends: web
  host:
    network_mode: host
  tool:
    extends: host
    ports: ["9100:9100"]
"""
    assert mappings(text) == [
        ("base", "127.0.0.1", None, None, 80, None, "tcp"),
        ("web", "127.0.0.1", None, None, 80, None, "tcp"),
        ("web", None, 8443, None, 443, None, "tcp"),
        ("api", "127.0.0.1", None, None, 80, None, "tcp"),
        ("api", None, 8443, None, 443, None, "tcp"),
    ]
    analysis = analyze(text)
    assert [(port.source, port.port) for port in analysis.exposed] == [("base", 9000), ("web", 9000), ("api", 9000)]
    assert [m.place for m in analysis.mappings[3:]] == ["services.base.ports[0] (extended by api)", "services.web.ports[0] (extended by api)"]
    assert diagnostic(text, "host-network-ports-ignored").source == "services.tool.network_mode"


def test_extends_cycles_and_other_files():
    text = "services:\n  a:\n    extends: b\n    ports: ['8080:80']\n  b:\n    extends: {service: a}\n"
    found = diagnostic(text, "extends-cycle")
    assert found.severity == "error" and "a, b, a" in found.message
    text = "services:\n  web:\n    extends: {file: common.yml, service: base}\n    ports: ['8080:80']\n"
    found = diagnostic(text, "extends-other-file")
    assert found.severity == "info" and "common.yml" in found.message and "not shown" in found.message
    assert mappings(text) == [("web", None, 8080, None, 80, None, "tcp")]
    assert "invalid-value" in codes("services:\n  web:\n    extends: nothing\n    ports: ['8080:80']\n")


def test_replicas_cannot_share_one_host_port():
    for scaling in ("deploy: {replicas: 3}", "scale: 2", "scale: '${N:-2}'"):
        found = diagnostic(f"services:\n  web:\n    ports: ['8080:80']\n    {scaling}\n", "replicas-share-host-port")
        assert found.severity == "error" and "port is already allocated" in found.message
        assert '"80"' in found.message and "8080-80" in found.message
    for ports in ("['8080-8082:80']", "['80']", "['127.0.0.1::80']"):
        assert "replicas-share-host-port" not in codes(f"services:\n  web:\n    ports: {ports}\n    deploy: {{replicas: 3}}\n")
    assert "replicas-share-host-port" in codes("services:\n  web:\n    ports: ['8080-8081:80']\n    deploy: {replicas: 3}\n")
    assert "replicas-share-host-port" not in codes("services:\n  web:\n    ports: ['8080:80']\n    deploy: {replicas: 1}\n")


def test_services_in_profiles_clash_only_when_their_profiles_run():
    text = "services:\n  web:\n    ports: ['8080:80']\n  debug:\n    profiles: [debug]\n    ports: ['8080:81']\n"
    found = diagnostic(text, "host-port-conflict")
    assert found.severity == "warning" and "when both start (web always, debug with profile debug) the second one fails" in found.message
    both = "services:\n  a:\n    profiles: [x]\n    ports: ['8080:80']\n  b:\n    profiles: [x]\n    ports: ['8080:81']\n"
    assert diagnostic(both, "host-port-conflict").severity == "error"
    assert [m["profiles"] for m in analyze(text).to_dict()["mappings"]] == [[], ["debug"]]


def test_a_clash_between_services_that_always_start_is_an_error_whatever_comes_first():
    text = "services:\n  dbg:\n    profiles: [debug]\n    ports: ['8080:80']\n  a:\n    ports: ['8080:80']\n  b:\n    ports: ['8080:81']\n"
    clashes = [d for d in analyze(text).diagnostics if d.code == "host-port-conflict"]
    assert [(d.source, d.severity) for d in clashes] == [("services.b.ports[0]", "error"), ("services.a.ports[0]", "warning")]
    assert clashes[0].related == ("services.a.ports[0]",)


def test_extends_hands_on_profiles_and_replica_fixes_stay_in_range():
    text = "services:\n  base:\n    profiles: [debug]\n  web:\n    extends: base\n    ports: ['8080:80']\n  api:\n    ports: ['8080:81']\n"
    assert [m.profiles for m in analyze(text).mappings] == [("debug",), ()]
    assert diagnostic(text, "host-port-conflict").severity == "warning"
    found = diagnostic("services:\n  web:\n    ports: ['65535:80']\n    scale: 2\n", "replicas-share-host-port")
    assert '"80"' in found.message and "65536" not in found.message


def test_extends_messages_name_what_they_can():
    assert "a extends itself" in diagnostic("services:\n  a:\n    extends: a\n", "extends-cycle").message
    other = diagnostic("services:\n  api:\n    extends: {file: common.yml}\n", "extends-other-file")
    assert "api extends a service from common.yml" in other.message
