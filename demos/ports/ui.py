"""The Ports & Containers tab. Gradio lives here only; the logic is in the sibling modules."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from .analyze import KINDS, analyze
from .codes import codes_markdown
from .diagram import build_diagram
from .explain import TABLE_HEADERS, diagnostics_markdown, sentences_markdown, table_rows
from .live import read_containers
from .model import Analysis, PortsInputError
from demos.tools import tool

from .well_known import answer

EXAMPLES = Path(__file__).with_name("examples")
EXAMPLE_FILES = {
    "Gradio, private": "gradio.sh",
    "docker run ×4": "docker_run.sh",
    "compose file": "compose.yaml",
    "Kubernetes": "kubernetes.yaml",
}
INTRO = """\
A port is a phone extension: your computer has one switchboard number, and each program answers on its own extension.
Publishing a port (`-p 8080:80`) puts calls to extension 8080 on your computer through to extension 80 inside a container.
Paste `docker run` commands, a compose file or Kubernetes manifests, or read the containers of your Docker engine,
to see where each call goes and what could go wrong."""


def analyze_ports(text: str, kind: str = "auto") -> dict:
    """Analyse port mappings: which host port reaches which container port, and what is wrong with them
    (unreachable ports, clashes, ports open to every network…), each problem with a code and a fix.

    Args:
        text: docker run commands, a docker-compose file, or Kubernetes manifests (Services, Pods, Deployments).
        kind: auto (tell from the text), docker-run, compose or kubernetes.
    """
    try:
        return analyze(text, kind).to_dict()
    except PortsInputError as error:
        raise gr.Error(str(error), print_exception=False) from None


def mermaid_file(diagram: str) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".mmd", prefix="ports-", delete=False, encoding="utf-8") as file:
        file.write(diagram)
    return file.name


def render(analysis: Analysis) -> tuple:
    diagram = build_diagram(analysis)
    return (
        f"```mermaid\n{diagram}```",
        sentences_markdown(analysis),
        diagnostics_markdown(analysis),
        table_rows(analysis),
        mermaid_file(diagram),
    )


def render_failure(message: str) -> tuple:
    gr.Warning(message)
    return "", "", f"**Nothing to show:** {message}", [], None


def show_text(text: str, kind: str) -> tuple:
    try:
        return render(analyze(text or "", kind))
    except PortsInputError as error:
        return render_failure(str(error))


def show_live() -> tuple:
    """The port mappings of the containers in the Docker (or Podman) engine of the machine running the app:
    a Mermaid diagram, sentences, problems and a table."""
    try:
        analysis = read_containers()
    except PortsInputError as error:
        return render_failure(str(error))
    if not analysis.mappings and not analysis.exposed:
        gr.Info("The engine answered, but no container publishes or exposes a port.")
    return render(analysis)


def answer_port(number: float | None) -> str:
    """What usually listens on a port (7860: Gradio, 5432: PostgreSQL…), or what kind of port it is.

    Args:
        number: a port number, 1 to 65535.
    """
    return answer(int(number or 0))


def build_tab() -> gr.Accordion:
    """The tab; returns the accordion of problem codes, which the chat's sources open."""
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=3):
            text = gr.Code(label="docker run commands, compose file or Kubernetes manifests", language="yaml", lines=14)
            kind = gr.Radio(list(KINDS), value="auto", label="Read the text as")
            with gr.Row():
                analyze_button = gr.Button("Show where traffic goes", variant="primary")
                live_button = gr.Button("Read my Docker engine's containers")
        with gr.Column(scale=1):
            port = gr.Number(label="What usually listens on port…", value=7860, precision=0, minimum=0, maximum=65535)
            port_answer = gr.Markdown(answer(7860))
    gr.Examples(
        examples=[[(EXAMPLES / name).read_text(encoding="utf-8"), "auto"] for name in EXAMPLE_FILES.values()],
        example_labels=list(EXAMPLE_FILES),
        inputs=[text, kind],
        cache_examples=False,
        label="Examples to try",
    )
    gr.Markdown("### Where the calls go")
    diagram = gr.Markdown()
    with gr.Row():
        with gr.Column():
            gr.Markdown("### In the course's words")
            sentences = gr.Markdown()
        with gr.Column():
            gr.Markdown("### Problems and fixes")
            diagnostics = gr.Markdown()
    with gr.Accordion("What each problem code means", open=False, elem_id="ports-codes") as codes:
        gr.Markdown(codes_markdown())
    table = gr.Dataframe(headers=TABLE_HEADERS, label="Mappings", interactive=False, wrap=True)
    download = gr.File(label="Mermaid diagram (.mmd)")

    outputs = [diagram, sentences, diagnostics, table, download]
    analyze_button.click(show_text, [text, kind], outputs, api_visibility="private")
    live_button.click(tool("ports_live", show_live), None, outputs, api_name="ports_live")
    port.change(tool("ports_well_known", answer_port), port, port_answer, api_name="ports_well_known")
    gr.api(tool("analyze_ports", analyze_ports), api_name="analyze_ports")
    return codes
