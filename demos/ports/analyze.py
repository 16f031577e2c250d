"""The one entry point: recognise what the text is, read its ports, and check them."""

from __future__ import annotations

import re

from .compose import analyze_compose, compose_document
from .diagnostics import check_mappings
from .kubernetes import analyze_kubernetes, is_kubernetes
from .model import Analysis, InputRejected, PortsInputError, UnrecognizedInput
from .parse_docker import analyze_docker_run, looks_like_docker_run
from .safe_yaml import check_size, load_documents

KINDS = ("auto", "docker-run", "compose", "kubernetes")
KIND_NAMES = {"compose": "compose file (with services:)", "kubernetes": "set of Kubernetes manifests (with apiVersion: and kind:)"}
# A top-level key that only a compose file or a manifest starts a line with.
MANIFEST_KEY = re.compile(r"^(?:services|apiVersion|kind)[ \t]*:", re.MULTILINE)
# A Go template action, as a Helm chart's templates hold: {{ .Values.service.port }}, {{- include "labels" . }}.
TEMPLATE_ACTION = re.compile(r"\{\{-?\s*[.$\"(\w/]")
MAX_MAPPINGS = 2000  # the cross checks compare every pair; real files have a few dozen

HELM_TEMPLATE = (
    "This looks like a Helm chart template: Helm fills in each {{ … }} before Kubernetes reads the manifest, so its "
    "ports are not known yet. Render it first with `helm template my-release ./my-chart` (add -f values.yaml for your "
    "own values) and paste what it prints."
)
NOT_RECOGNISED = (
    "The text is neither `docker run` commands, a compose file nor Kubernetes manifests. Paste one or more `docker run` commands, "
    "a compose file (with services:), or Kubernetes manifests (with apiVersion: and kind:)."
)


def analyze(text: str, kind: str = "auto") -> Analysis:
    """Analyse docker run commands, a compose file or Kubernetes manifests.

    Raises UnrecognizedInput when the text is none of them (or not the kind asked
    for) and InputRejected when it is too big or too tangled to read safely.
    """
    if kind not in KINDS:
        raise PortsInputError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}.")
    check_size(text)
    analysis = read(text, kind)
    published = len(analysis.mappings) + sum(len(network.ports) for network in analysis.host_network)
    if published > MAX_MAPPINGS:
        raise InputRejected(f"The text publishes {published:,} ports; the limit is {MAX_MAPPINGS:,}. Paste a part of it.")
    check_mappings(analysis)
    return analysis


def read(text: str, kind: str) -> Analysis:
    has_commands = looks_like_docker_run(text)
    if kind == "docker-run":
        if not has_commands:
            raise UnrecognizedInput("No line starts a `docker run` or `docker create` command. " + NOT_RECOGNISED)
        return analyze_docker_run(text)
    if has_commands and kind == "auto" and not MANIFEST_KEY.search(text):
        return analyze_docker_run(text)
    # A compose file or manifest may run `docker run` in a command: of its own, so then YAML comes first.
    try:
        documents = load_documents(text)
    except PortsInputError as error:
        if TEMPLATE_ACTION.search(text) and not isinstance(error, InputRejected):
            raise UnrecognizedInput(HELM_TEMPLATE) from None
        if kind == "auto" and not isinstance(error, InputRejected):
            raise UnrecognizedInput(f"{NOT_RECOGNISED} ({error})") from None
        raise
    compose = compose_document(documents)
    if compose is not None and kind in ("auto", "compose"):
        return analyze_compose(compose)
    if is_kubernetes(documents) and kind in ("auto", "kubernetes"):
        return analyze_kubernetes(documents)
    if has_commands and kind == "auto":
        return analyze_docker_run(text)
    raise UnrecognizedInput(NOT_RECOGNISED if kind == "auto" else f"The text is not a {KIND_NAMES[kind]}. {NOT_RECOGNISED}")
