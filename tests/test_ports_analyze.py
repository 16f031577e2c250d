"""analyze(): docker run commands, compose files and Kubernetes manifests, and the problems found in them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from demos.ports import UnrecognizedInput, analyze
from demos.ports.__main__ import main
from demos.ports.diagram import build_diagram
from demos.ports.explain import sentence, sentences_markdown
from demos.ports.model import PortsInputError
from demos.ports.well_known import answer, describe

EXAMPLES = Path(__file__).resolve().parents[1] / "demos" / "ports" / "examples"


def mappings(text, kind="auto"):
    return [(m["source"], m["host_ip"], m["host_port"], m["host_port_end"], m["container_port"], m["container_port_end"], m["protocol"]) for m in analyze(text, kind).to_dict()["mappings"]]


def codes(text, kind="auto"):
    return [d.code for d in analyze(text, kind).diagnostics]


def diagnostic(text, code):
    return next(d for d in analyze(text).diagnostics if d.code == code)


# docker run


def test_docker_run_quoting_continuations_and_flag_forms():
    text = """sudo docker run -d --rm \\
      --name "my web" -e 'GREETING=a -p 1:1 b' \\
      -p 8080:80 --publish=127.0.0.1:8443:443/tcp -p8081:81 -dp 8082:82 -p=8083:83 \\
      nginx:1.25 nginx -g 'daemon off;' -p 9999:9999"""
    assert mappings(text) == [
        ("my web", None, 8080, None, 80, None, "tcp"),
        ("my web", "127.0.0.1", 8443, None, 443, None, "tcp"),
        ("my web", None, 8081, None, 81, None, "tcp"),
        ("my web", None, 8082, None, 82, None, "tcp"),
        ("my web", None, 8083, None, 83, None, "tcp"),
    ]


def test_several_commands_and_names_from_images():
    text = "docker run -p 80:80 nginx && docker container create -p 5432:5432 postgres:16; podman run -p 6379:6379 docker.io/library/redis\ndocker run -p 81:80 nginx"
    assert [m[0] for m in mappings(text)] == ["nginx", "postgres", "redis", "nginx-2"]


def test_long_publish_form():
    text = "docker run --publish published=8080,target=80,protocol=UDP,mode=host --name dns img"
    assert mappings(text) == [("dns", None, 8080, None, 80, None, "udp")]
    assert "invalid-port" in codes("docker run -p published=8080 img")
    assert "invalid-value" in codes("docker run -p target=80,udp img")


def test_docker_run_ignores_the_publish_fields_it_does_not_read():
    # docker run turns the key=value form into published:target/protocol and drops every other field.
    text = "docker run --publish published=8080,target=80,host_ip=127.0.0.1 --name web nginx"
    assert mappings(text) == [("web", None, 8080, None, 80, None, "tcp")]  # on every address, not 127.0.0.1
    ignored = diagnostic(text, "publish-field-ignored")
    assert ignored.severity == "warning" and "every address" in ignored.message and "-p 127.0.0.1:8080:80" in ignored.message
    assert "-p [::1]:8080:80" in diagnostic(text.replace("127.0.0.1", "::1"), "publish-field-ignored").message
    assert "Swarm" in diagnostic("docker run -p target=80,mode=host img", "publish-field-ignored").message
    assert "publish-field-ignored" not in codes("docker run -p published=8080,target=80,protocol=udp img")


def test_random_host_ports_from_publish_all_and_expose():
    text = "docker run -P --expose 9000 --expose 7000-7001/udp --name app img"
    assert mappings(text) == [("app", None, None, None, 9000, None, "tcp"), ("app", None, None, None, 7000, 7001, "udp")]
    assert {"random-host-port", "publish-all"} <= set(codes(text))
    assert analyze("docker run --expose 3000 --name app img").exposed[0].port == 3000


def test_host_network_ignores_ports():
    for network in ("--network host", "--net=host"):
        analysis = analyze(f"docker run {network} -p 8080:80 --name web img")
        assert analysis.mappings == []
        assert [d.code for d in analysis.diagnostics] == ["host-network-ports-ignored"]


def test_a_container_without_a_network_publishes_nothing():
    for text in ("docker run --network none -p 8080:80 --name job img", "docker run --net=none -P --expose 80 --name job img",
                 "services:\n  job:\n    image: img\n    network_mode: none\n    ports: ['8080:80']\n"):
        analysis = analyze(text)
        assert analysis.mappings == [] and analysis.exposed == []
        assert [d.code for d in analysis.diagnostics] == ["no-network-ports-ignored"]
        assert "none of its port mappings is published" in analysis.diagnostics[0].message
    assert codes("docker run --network none --name job img") == []  # no network asked for, none missed


def test_invalid_specs_become_diagnostics_not_exceptions():
    found = codes("docker run -p localhost:80:80 -p 70000:80 -p 80/ftp -p 1-3:1-2 --name x img")
    assert found[:4] == ["invalid-ip", "invalid-port", "invalid-protocol", "range-mismatch"]
    analysis = analyze("docker run -p \"8080:80 img\ndocker run -p 81:80 img")
    assert [d.code for d in analysis.diagnostics][0] == "shell-syntax" and analysis.diagnostics[0].source == "line 1"
    assert [m.host_port for m in analysis.mappings] == [81]  # the other lines are still read


# compose


COMPOSE = """
services:
  web:
    image: nginx
    ports:
      - 22:22
      - "8080:80"
      - 3000
      - "127.0.0.1:5000-5001:5000-5001"
      - "[::1]:6001:6001/UDP"
      - target: 7860
        published: "${GRADIO_PORT:-7861}"
        host_ip: 127.0.0.1
        protocol: tcp
        app_protocol: http
        mode: host
        name: gradio
      - target: 80
        published: 9000-9001
    expose: ["9100", 9200]
"""


def test_compose_short_and_long_syntax():
    assert mappings(COMPOSE) == [
        ("web", None, 22, None, 22, None, "tcp"),
        ("web", None, 8080, None, 80, None, "tcp"),
        ("web", None, None, None, 3000, None, "tcp"),
        ("web", "127.0.0.1", 5000, 5001, 5000, 5001, "tcp"),
        ("web", "::1", 6001, None, 6001, None, "udp"),
        ("web", "127.0.0.1", 7861, None, 7860, None, "tcp"),
        ("web", None, 9000, 9001, 80, None, "tcp"),
    ]
    assert [port.port for port in analyze(COMPOSE).exposed] == [9100, 9200]


def test_yaml_base60_is_found_in_the_raw_text():
    found = diagnostic(COMPOSE, "yaml-base60")
    assert found.source == "services.web.ports[0]" and "1342" in found.message
    assert "yaml-base60" not in codes('services:\n  a:\n    ports: ["22:22", 8080:80]\n')


def test_interpolation_defaults_and_unset_variables():
    text = 'services:\n  a:\n    ports: ["${HOST_PORT}:80", "${B:-81}:${C-82}", "$$PORT", "${NEED:?set NEED}:83"]\n'
    analysis = analyze(text)
    assert [(m.host_port, m.container_port) for m in analysis.mappings[:2]] == [(None, 80), (81, 82)]
    unset = {d.message.split()[0]: d.severity for d in analysis.diagnostics if d.code == "unset-variable"}
    assert unset == {"HOST_PORT": "warning", "NEED": "error"}
    assert "invalid-port" in codes(text)  # "$PORT" after $$ is a literal, not a port


def test_compose_network_modes():
    text = "services:\n  vpn:\n    image: vpn\n  app:\n    network_mode: service:vpn\n    ports: ['8080:80']\n  mon:\n    network_mode: host\n    ports: ['9100:9100']\n"
    analysis = analyze(text)
    assert analysis.mappings == []
    assert sorted(d.code for d in analysis.diagnostics) == ["host-network-ports-ignored", "shared-network-ports"]


def test_compose_bad_entries():
    text = "services:\n  a:\n    ports: [{published: 80}, {target: 80, colour: red}, true, '8080:80/quic']\n  b: nginx\n"
    assert codes(text) == ["invalid-port", "invalid-value", "invalid-value", "invalid-protocol", "invalid-value"]


# Kubernetes


KUBERNETES = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, tier: front}}
    spec:
      containers:
        - name: app
          ports:
            - {name: http, containerPort: 8080}
            - {name: dns, containerPort: 53, protocol: UDP}
            - {containerPort: 9090, hostPort: 9090}
---
apiVersion: v1
kind: Pod
metadata: {name: db, labels: {app: db}}
spec:
  containers: [{name: pg, ports: [{containerPort: 5432}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}, {name: dns, port: 53, targetPort: dns, protocol: UDP}]
---
apiVersion: v1
kind: Service
metadata: {name: web-node}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080}, {name: admin, port: 81}]
---
apiVersion: v1
kind: Service
metadata: {name: web-lb}
spec:
  type: LoadBalancer
  selector: {tier: front}
  ports: [{port: 443, targetPort: http, nodePort: 30080}]
"""


def test_kubernetes_services_and_workloads():
    assert mappings(KUBERNETES) == [
        ("Deployment/web", None, 9090, None, 9090, None, "tcp"),
        ("web", None, 80, None, 8080, None, "tcp"),
        ("web", None, 53, None, 53, None, "udp"),
        ("web-node", None, 80, None, 8080, None, "tcp"),
        ("web-node", None, 81, None, 81, None, "tcp"),
        ("web-lb", None, 443, None, 8080, None, "tcp"),
    ]
    analysis = analyze(KUBERNETES)
    assert [m.node_port for m in analysis.mappings] == [None, None, None, 30080, None, 30080]
    assert {m.targets for m in analysis.mappings[1:]} == {("Deployment/web",)}
    conflict = next(d for d in analysis.diagnostics if d.code == "host-port-conflict")
    assert "30080" in conflict.message and conflict.source == "Service/web-lb spec.ports[0]"
    assert sorted(port.port for port in analysis.exposed) == [53, 5432, 8080]


def test_kubernetes_problems():
    text = """
apiVersion: v1
kind: List
items:
  - {apiVersion: v1, kind: Pod, metadata: {name: p, labels: {app: a}}, spec: {containers: [{name: c, ports: [{name: web, containerPort: 80}]}]}}
  - {apiVersion: v1, kind: Service, metadata: {name: s1}, spec: {selector: {app: a}, ports: [{port: 80, targetPort: http}]}}
  - {apiVersion: v1, kind: Service, metadata: {name: s2}, spec: {selector: {app: b}, ports: [{port: 80}]}}
  - {apiVersion: v1, kind: Service, metadata: {name: s3}, spec: {type: NodePort, selector: {app: a}, ports: [{port: 80, nodePort: 8080}]}}
  - {apiVersion: v1, kind: Service, metadata: {name: s4, namespace: other}, spec: {selector: {app: a}, ports: [{port: 80, protocol: HTTP}]}}
"""
    found = {(d.code, d.source) for d in analyze(text).diagnostics}
    assert ("targetport-unresolved", "Service/s1 spec.ports[0]") in found
    assert ("service-selects-nothing", "Service/s2") in found
    assert ("nodeport-out-of-range", "Service/s3 spec.ports[0]") in found
    assert ("invalid-protocol", "Service/s4 spec.ports[0]") in found
    assert ("service-selects-nothing", "Service/s4") in found  # the pod is in another namespace


SERVICE = "{apiVersion: v1, kind: Service, metadata: {name: s}, spec: {selector: {app: a}, ports: [{port: 80, targetPort: %s}]}}"
POD = "{apiVersion: v1, kind: Pod, metadata: {name: p, labels: {app: a}}, spec: {containers: [{name: c, ports: [{containerPort: 8080}]}]}}"


def test_a_target_port_the_selected_containers_do_not_declare_is_a_warning():
    message = diagnostic(f"{POD}\n---\n{SERVICE % 80}", "targetport-not-declared").message
    assert "declare only 8080" in message and "targetPort: 8080" in message
    assert "targetport-not-declared" not in codes(f"{POD}\n---\n{SERVICE % 8080}")


def test_match_labels_in_a_service_selector_is_refused_and_read_as_labels():
    text = f"{POD}\n---\n{SERVICE % 8080}".replace("selector: {app: a}", "selector: {matchLabels: {app: a}}")
    assert "matchLabels belongs to the selector of a Deployment" in diagnostic(text, "invalid-value").message
    assert "service-selects-nothing" not in codes(text)


def test_the_api_server_s_refusals_of_workloads_and_services_are_errors():
    # Each is a manifest that `kubectl apply` sends back; the analysis says why, and reads the rest.
    assert not [d for d in analyze(KUBERNETES).diagnostics if d.code in ("workload-selector-mismatch", "invalid-value")]
    missing = KUBERNETES.replace("  selector: {matchLabels: {app: web}}\n", "")
    assert "has no spec.selector" in diagnostic(missing, "workload-selector-mismatch").message
    other = diagnostic(KUBERNETES.replace("matchLabels: {app: web}", "matchLabels: {app: webapp}"), "workload-selector-mismatch")
    assert "app=webapp" in other.message and "app=web, tier=front" in other.message and other.severity == "error"
    expression = "matchExpressions: [{key: tier, operator: In, values: [back]}]"
    assert "tier In ['back']" in diagnostic(KUBERNETES.replace("matchLabels: {app: web}", expression), "workload-selector-mismatch").message
    assert "workload-selector-mismatch" not in codes(KUBERNETES.replace("matchLabels: {app: web}", expression.replace("back", "front")))
    controller = "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: r}\nspec: {selector: {app: x}, template: {metadata: {labels: {app: y}}}}\n"
    assert "asks for app=x" in diagnostic(controller, "workload-selector-mismatch").message

    unnamed = diagnostic(KUBERNETES.replace("{name: admin, port: 81}", "{port: 81}"), "invalid-value")
    assert unnamed.source == "Service/web-node spec.ports[1]" and "each needs a name" in unnamed.message
    assert "names two ports http" in diagnostic(KUBERNETES.replace("name: admin", "name: http"), "invalid-value").message
    assert "invalid-value" not in codes(f"{POD}\n---\n{SERVICE % 8080}")  # one port needs no name

    lowercase = diagnostic(KUBERNETES.replace("targetPort: dns, protocol: UDP", "targetPort: dns, protocol: udp"), "invalid-protocol")
    assert "must be written UDP" in lowercase.message and lowercase.source == "Service/web spec.ports[1]"


def test_a_service_pasted_without_any_workload_is_told_gently():
    alone = diagnostic(SERVICE % 80, "service-selects-nothing")
    assert alone.severity == "info" and "paste the Deployment too" in alone.message
    assert diagnostic(f"{POD.replace('app: a', 'app: b')}\n---\n{SERVICE % 80}", "service-selects-nothing").severity == "warning"
    named = diagnostic(SERVICE % "http", "targetport-unresolved")
    assert named.severity == "info" and "no Pod or workload is in this text" in named.message
    assert diagnostic(f"{POD}\n---\n{SERVICE % 'http'}", "targetport-unresolved").severity == "error"


# diagnostics across mappings


@pytest.mark.parametrize(
    "first, second, conflict",
    [
        ("8080:80", "8080:81", True),
        ("8000-8010:8000-8010", "8005:80", True),
        ("0.0.0.0:8080:80", "127.0.0.1:8080:81", True),
        ("8080:80", "[::1]:8080:81", True),
        ("[::]:8080:80", "[::1]:8080:81", True),
        ("[::]:8080:80", "127.0.0.1:8080:81", False),
        ("127.0.0.1:8080:80", "127.0.0.2:8080:81", False),
        ("53:53/udp", "53:53/tcp", False),
        ("8000-8010:80", "8005:81", False),  # the engine picks a free port from the range
        ("::80", "::81", False),
    ],
)
def test_host_port_conflicts(first, second, conflict):
    found = codes(f"docker run -p {first} a\ndocker run -p {second} b")
    assert ("host-port-conflict" in found) == conflict


def test_duplicate_mapping_is_not_a_conflict():
    assert codes("docker run -p 127.0.0.1:8080:80 -p 127.0.0.1:8080:80 a") == ["duplicate-mapping"]


def test_host_side_diagnostics():
    assert codes("docker run -p 80:80 a") == ["public-bind", "privileged-port"]
    assert [(d.code, d.severity) for d in analyze("docker run -p 0.0.0.0:8080:80 a").diagnostics] == [("public-bind", "info")]
    assert codes("docker run -p 127.0.0.1:8080:80 a") == []
    assert "write 127.0.0.1:7860:7860" in diagnostic("docker run -p 7860:7860 a", "public-bind").message
    assert "(80 is the usual port for plain HTTP web servers)" in diagnostic("docker run -p 80:80 a", "privileged-port").message


def test_suggested_fixes_keep_the_address_protocol_and_range():
    assert "e.g. 127.0.0.1:8080:80." in diagnostic("docker run -p 127.0.0.1:80:80 a", "privileged-port").message
    assert "write 127.0.0.1:53:53/udp" in diagnostic("docker run -p 53:53/udp a", "public-bind").message
    assert "e.g. 9000-9002:1000-1002." in diagnostic("docker run -p 1000-1002:1000-1002 a", "privileged-port").message
    assert "Write [::1]:8080:80 " in diagnostic("docker run -p [::]:8080:80 a", "public-bind").message
    assert "Write 127.0.0.1:8080:80 " in diagnostic("docker run -p 0.0.0.0:8080:80 a", "public-bind").message


def test_duplicate_mapping_names_both_places():
    found = diagnostic('services:\n  web:\n    ports: ["8080:80", "8081:81", "8080:80"]\n', "duplicate-mapping")
    assert "services.web.ports[0] and services.web.ports[2]" in found.message
    assert found.places == ("services.web.ports[2]", "services.web.ports[0]")


KUBERNETES_NODE = """
apiVersion: v1
kind: Pod
metadata: {name: agent, labels: {app: agent}}
spec:
  containers: [{name: agent, ports: [{containerPort: 9100, hostPort: 9100}]}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: exporter}
spec:
  template:
    metadata: {labels: {app: exporter}}
    spec:
      containers: [{name: exporter, ports: [{containerPort: 9100, hostPort: 9100}]}]
---
apiVersion: v1
kind: Service
metadata: {name: dns-tcp}
spec: {type: NodePort, selector: {app: agent}, ports: [{port: 53, protocol: TCP, nodePort: 30053}]}
---
apiVersion: v1
kind: Service
metadata: {name: dns-udp}
spec: {type: NodePort, selector: {app: agent}, ports: [{port: 53, protocol: UDP, nodePort: 30053}]}
"""


def test_kubernetes_host_ports_and_node_ports_get_kubernetes_advice():
    analysis = analyze(KUBERNETES_NODE)
    public = [d for d in analysis.diagnostics if d.code == "public-bind"]
    assert len(public) == 2 and all("hostIP: 127.0.0.1" in d.message and "Docker" not in d.message for d in public)
    assert "privileged-port" not in codes(KUBERNETES_NODE)
    host, node = [d for d in analysis.diagnostics if d.code == "host-port-conflict"]
    assert "Pending" in host.message and "port is already allocated" not in host.message
    # Node ports are handed out by number: a TCP and a UDP Service cannot share one.
    assert "provided port is already allocated" in node.message and node.source == "Service/dns-udp spec.ports[0]"


def test_host_ports_and_node_ports_are_different_numbers_spaces():
    pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: a}}\nspec: {containers: [{name: c, ports: [{containerPort: 53, hostPort: 30090, protocol: UDP}]}]}\n"
    service = "---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {type: NodePort, selector: {app: a}, ports: [{port: 53, nodePort: 30090}]}\n"
    assert "host-port-conflict" not in codes(pod + service)


def test_clashes_within_one_object_say_that_object_is_refused():
    service = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {type: NodePort, ports: [{port: 80, nodePort: 30080}, {port: 81, nodePort: 30080}]}\n"
    assert "refuses the Service, as two of its ports ask for one node port" in diagnostic(service, "host-port-conflict").message
    pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, ports: [{containerPort: 80, hostPort: 8080}]}, {name: b, ports: [{containerPort: 81, hostPort: 8080}]}]}\n"
    assert "refuses the pod" in diagnostic(pod, "host-port-conflict").message


def test_a_service_may_use_one_node_port_for_tcp_and_udp():
    text = "apiVersion: v1\nkind: Service\nmetadata: {name: dns}\nspec: {type: NodePort, ports: [{name: tcp, port: 53, nodePort: 30053}, {name: udp, port: 53, protocol: UDP, nodePort: 30053}]}\n"
    assert "host-port-conflict" not in codes(text)


def test_headless_services_put_nothing_through():
    text = KUBERNETES.replace("metadata: {name: web}\nspec:\n", "metadata: {name: web}\nspec:\n  clusterIP: None\n")
    headless = analyze(text).mappings[1]
    assert headless.reach == "headless"
    assert sentence(headless, "kubernetes").startswith(
        "Inside the cluster, the name of the headless Service web stands for the pods' own addresses, "
        "so callers reach extension 8080 in the pods of Deployment/web directly"
    )
    assert "put through to" not in sentence(headless, "kubernetes")


def test_kubernetes_refuses_quoted_numbers_as_the_api_server_does():
    pod = "apiVersion: v1\nkind: Pod\nmetadata: {{name: p, labels: {{app: a}}}}\nspec: {{containers: [{{name: c, ports: [{port}]}}]}}\n"
    service = "---\napiVersion: v1\nkind: Service\nmetadata: {{name: s}}\nspec: {{selector: {{app: a}}, ports: [{port}]}}\n"
    quoted_container_port = analyze(pod.format(port="{containerPort: '8080'}"))
    assert "remove the quotes" in quoted_container_port.diagnostics[0].message
    missing = analyze(pod.format(port="{name: http}"))
    assert "needs containerPort" in missing.diagnostics[0].message and "None" not in missing.diagnostics[0].message
    quoted_target = analyze(pod.format(port="{containerPort: 8080}") + service.format(port="{port: 80, targetPort: '8080'}"))
    assert "needs a letter" in diagnostic_of(quoted_target, "invalid-port").message
    by_name = analyze(pod.format(port="{containerPort: 8080, name: http}") + service.format(port="{port: 80, targetPort: http}"))
    assert [m.container_port for m in by_name.mappings] == [8080]


def diagnostic_of(analysis, code):
    return next(d for d in analysis.diagnostics if d.code == code)


def test_pods_on_the_node_network_answer_on_the_nodes_ports():
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: probe}\n"
        "spec: {hostNetwork: true, containers: [{name: c, ports: [{containerPort: 9100, hostPort: 9100}, {containerPort: 53, protocol: UDP}]}]}\n"
    )
    analysis = analyze(text)
    assert analysis.mappings == [] and analysis.exposed == []
    assert [(h.source, h.setting) for h in analysis.host_network] == [("Pod/probe", "hostNetwork: true")]
    assert sentences_markdown(analysis) == (
        "- Pod/probe shares the node's network (hostNetwork: true), so nothing is put through: "
        "it answers on the node's own extensions 9100, 53/udp, from this or any other machine."
    )
    assert "9100, 53/udp (hostNetwork: true)" in build_diagram(analysis)


@pytest.mark.parametrize(
    "text, setting",
    [
        ("docker run --name web --network host --expose 3000 node", "--network host"),
        ('services:\n  web:\n    network_mode: host\n    expose: ["3000"]\n', "network_mode: host"),
    ],
)
def test_containers_on_the_host_network_answer_on_the_hosts_ports(text, setting):
    analysis = analyze(text)
    assert analysis.mappings == [] and analysis.exposed == []
    assert sentences_markdown(analysis) == (
        f"- web shares this computer's network ({setting}), so nothing is put through: "
        "it answers on this computer's own extension 3000, from this or any other machine."
    )
    assert "No published" not in build_diagram(analysis) and "3000 (" in build_diagram(analysis)
    assert "host-network-ports-ignored" not in codes(text)


def test_a_command_without_an_image_is_refused():
    analysis = analyze("docker run -p 8080:80")
    assert [d.code for d in analysis.diagnostics if d.severity == "error"] == ["missing-image"]
    assert "in the unnamed container" in sentences_markdown(analysis)


@pytest.mark.parametrize("text", ["docker run nginx -p 8080:80", "docker run -d nginx --publish=8080:80"])
def test_a_port_option_after_the_image_is_said_to_do_nothing(text):
    assert mappings(text) == []
    message = diagnostic(text, "options-after-image").message
    assert "after the image nginx" in message and "Put it before the image" in message


def test_the_program_s_own_flags_after_the_image_are_left_alone():
    assert "options-after-image" not in codes("docker run -p 8080:80 alpine ls -p /tmp")


def test_a_backslash_with_spaces_after_it_is_said_to_end_the_command():
    text = "docker run -d \\  \n  -p 8080:80 \\\n  nginx"
    assert diagnostic(text, "shell-syntax").source == "line 1"
    assert "shell-syntax" not in codes("docker run -d \\\n  -p 8080:80 nginx")


def test_a_container_range_without_host_ports_gets_one_free_port_each():
    assert "each of them gets its own free host port" in diagnostic("docker run -p 3000-3005 nginx", "random-host-port").message
    assert "a free one is picked" in diagnostic("docker run -p 80 nginx", "random-host-port").message


def test_a_shell_variable_in_a_port_is_read_with_its_default_or_said_to_be_unknown():
    assert mappings('docker run -p "${HOST_PORT:-8080}:80" nginx') == [("nginx", None, 8080, None, 80, None, "tcp")]
    assert mappings("docker run -p $PORT:80 nginx") == []
    assert "holds a shell variable with no default" in diagnostic("docker run -p $PORT:80 nginx", "unset-variable").message


@pytest.mark.parametrize("text", ["sudo -E docker run -p 8080:80 nginx", "nohup docker run -p 8080:80 nginx &",
                                  "env TAG=1 docker run -p 8080:80 nginx"])
def test_a_command_behind_sudo_nohup_or_env_is_read(text):
    assert mappings(text) == [("nginx", None, 8080, None, 80, None, "tcp")]


def test_a_container_on_the_host_network_holds_its_ports():
    found = diagnostic("docker run --network host --expose 8080 --name a x\ndocker run -p 8080:80 --name b y", "host-port-conflict")
    assert "host port 8080 (a (line 1))" in found.message and found.severity == "error"
    pods = "".join(
        f"---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec: {{{extra}containers: [{{name: c, ports: [{{containerPort: 80{host}}}]}}]}}\n"
        for name, extra, host in (("probe", "hostNetwork: true, ", ""), ("web", "", ", hostPort: 80"))
    )
    assert "Pending" in diagnostic(pods, "host-port-conflict").message


def test_the_command_line_tells_of_host_networks(capsys, tmp_path):
    path = tmp_path / "run.sh"
    path.write_text("docker run --network host --expose 80 nginx")
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "shares this computer's network (--network host)" in out and "No ports are published" not in out


def test_only_the_unpublished_part_of_an_exposed_range_is_private():
    analysis = analyze("docker run -p 8080:80 --expose 79-81 --expose 9000-9001/udp --expose 79-81 nginx")
    text = sentences_markdown(analysis)
    assert "Extension 79 in nginx answers only" in text and "Extension 81 in nginx answers only" in text
    assert "Extensions 9000–9001/udp in nginx answer only" in text
    assert text.count("Extension 79 ") == 1  # exposing twice says nothing new


def test_a_diagram_too_big_to_follow_draws_the_first_mappings_and_says_so():
    diagram = build_diagram(analyze("docker run " + " ".join(f"-p {port}:80" for port in range(10_000, 10_500)) + " img"))
    assert diagram.count("-->") == 400 and "100 more mappings are not drawn" in diagram


def test_published_ports_are_not_called_unreachable():
    for text in ("docker run --name web --expose 80 -p 8080:80 nginx", 'services:\n  web:\n    expose: ["80"]\n    ports: ["8080:80"]\n'):
        assert "nothing outside can reach" not in sentences_markdown(analyze(text))
    example = analyze((EXAMPLES / "kubernetes.yaml").read_text())
    assert "Extension 7860 in" not in sentences_markdown(example)
    still_private = analyze("docker run --name web --expose 81 -p 8080:80 nginx")
    assert "Extension 81 in web answers only calls from other containers" in sentences_markdown(still_private)


def test_sentence_wording():
    ranges = analyze("docker run --name web -p 8000-8002:8000-8002 a")
    assert "Calls to extensions 8000–8002 on your computer, from this or any other machine, are put through" in sentences_markdown(ranges)
    everywhere = analyze("docker run --name web -p 0.0.0.0:8080:80 a")
    assert "at any of its addresses (0.0.0.0)" in sentences_markdown(everywhere)
    assert "-P publishes every port the image declares" in sentences_markdown(analyze("docker run -P nginx"))
    assert not sentences_markdown(analyze("docker run -P nginx")).startswith("No ports are published")


def test_json_keeps_what_the_analysis_knows():
    result = analyze(KUBERNETES).to_dict()
    lb = result["mappings"][-1]
    assert (lb["reach"], lb["host_port"], lb["node_port"], lb["targets"]) == ("load-balancer", 443, 30080, ["Deployment/web"])
    assert {"port": 5432, "port_end": None, "protocol": "tcp", "source": "Pod/db"} in result["exposed"]
    json.dumps(result)


# recognising the input


def test_unrecognized_input():
    for text in ["", "hello world", "a: b", "- 1\n- 2", "{{{"]:
        with pytest.raises(UnrecognizedInput):
            analyze(text)
    with pytest.raises(UnrecognizedInput):
        analyze(COMPOSE, "kubernetes")
    with pytest.raises(UnrecognizedInput):
        analyze(COMPOSE, "docker-run")


HELM_SERVICE = """apiVersion: v1
kind: Service
metadata:
  name: {{ include "app.fullname" . }}
spec:
  type: {{ .Values.service.type }}
  ports:
    - port: {{ .Values.service.port }}
      targetPort: http
  selector:
    {{- include "app.selectorLabels" . | nindent 4 }}
"""


@pytest.mark.parametrize("kind", ["auto", "kubernetes"])
def test_a_helm_template_is_told_to_be_rendered_first(kind):
    with pytest.raises(UnrecognizedInput, match="helm template"):
        analyze(HELM_SERVICE, kind)
    with pytest.raises(PortsInputError) as plain:
        analyze("a: [1,", kind)  # broken YAML without a template says what YAML found
    assert "helm" not in str(plain.value).lower()


def test_a_compose_file_that_runs_docker_in_a_command_is_read_as_compose():
    text = """services:
  ci:
    image: docker:cli
    command: sh -c "docker pull alpine && docker run --rm -p 1:1 alpine echo hi"
  web:
    image: nginx
    ports: ["8080:80"]
"""
    assert mappings(text) == [("web", None, 8080, None, 80, None, "tcp")]
    assert analyze("docker run -p 8080:80 nginx && echo 'key: value'").kind == "docker-run"


def test_kind_can_be_forced():
    assert analyze(COMPOSE, "compose").kind == "compose"
    assert analyze("docker run -p 80:80 a", "docker-run").kind == "docker-run"


# explanations, the diagram, well-known ports


def test_sentences_speak_of_extensions():
    analysis = analyze("docker run --name web -p 127.0.0.1:8080:80 nginx")
    assert sentence(analysis.mappings[0], analysis.kind).startswith(
        "A call to extension 8080 on your computer at address 127.0.0.1 is put through to extension 80 in the web container"
    )
    node = analyze(KUBERNETES).mappings[3]
    assert sentence(node, "kubernetes").startswith(
        "A call to extension 30080 on any node of the cluster, or to extension 80 of the Service web-node inside it, "
        "is put through to extension 8080 in the pods of Deployment/web"
    )


def test_diagram_groups_and_highlights():
    diagram = build_diagram(analyze("docker run --name web -p 8080:80/udp --expose 3000 a\ndocker run --name api -p 8080:81/udp b"))
    assert diagram.startswith("flowchart LR\n")
    assert 'subgraph g0["web"]' in diagram and 'subgraph g1["api"]' in diagram
    assert "-->|udp|" in diagram
    assert "3000/tcp (other containers only)" in diagram
    assert "class h0,g0p0,g1p0 error" in diagram
    assert build_diagram(analyze("docker run a")).count("No published or exposed ports") == 1


def test_well_known_ports():
    assert describe(8501) == "8501 is Streamlit's default port"
    assert describe(7860) == "7860 is Gradio's default port"
    assert describe(40000) is None
    for port in (22, 80, 443, 3000, 3306, 5000, 5432, 6379, 8000, 8080, 8888, 9090, 11434, 27017):
        assert describe(port)
    assert "not a port" in answer(70000) and "NodePort" in answer(30001)


# the command line


def test_cli_prints_the_dict(tmp_path, capsys):
    path = tmp_path / "compose.yaml"
    path.write_text(COMPOSE)
    assert main([str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == analyze(COMPOSE).to_dict()


def test_cli_exit_codes():
    command = [sys.executable, "-m", "demos.ports", "-", "--json"]
    root = Path(__file__).resolve().parents[1]
    good = subprocess.run(command, input="docker run -p 8080:80 nginx", capture_output=True, text=True, cwd=root, timeout=60)
    assert good.returncode == 0 and json.loads(good.stdout)["kind"] == "docker-run"
    bad = subprocess.run(command, input="just some words", capture_output=True, text=True, cwd=root, timeout=60)
    assert bad.returncode == 2 and "neither" in bad.stderr and bad.stdout == ""


def test_cli_output_may_be_cut_short():
    commands = "".join(f"docker run -p {8000 + n}:80 image{n}\n" for n in range(500))
    reader = subprocess.Popen([sys.executable, "-m", "demos.ports", "-", "--json"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    reader.stdin.write(commands.encode())
    reader.stdin.close()
    assert reader.stdout.read(10) == b'{\n  "kind"'
    reader.stdout.close()  # like `| head`: the rest of the output has nowhere to go
    assert reader.wait(timeout=60) == 0
    assert reader.stderr.read() == b""


@pytest.mark.parametrize("name", sorted(path.name for path in EXAMPLES.iterdir()))
def test_examples_analyse(name):
    analysis = analyze((EXAMPLES / name).read_text())
    assert analysis.mappings


def test_examples_show_the_main_problems():
    found = {code for path in EXAMPLES.iterdir() for code in codes(path.read_text())}
    assert {"host-port-conflict", "yaml-base60", "host-network-ports-ignored", "nodeport-out-of-range", "targetport-unresolved", "service-selects-nothing"} <= found
