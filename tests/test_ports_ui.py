"""The tab in a running app: the analyze_ports endpoint answers through gradio_client."""

import gradio as gr
import pytest
from gradio_client import Client

from demos.ports.ui import build_tab, show_text


@pytest.fixture(scope="module")
def client():
    with gr.Blocks() as demo:
        with gr.Tab("Ports & Containers"):
            build_tab()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
    try:
        yield Client(url, verbose=False)
    finally:
        demo.close()


def test_analyze_ports_endpoint(client):
    result = client.predict("docker run --name web -p 8080:80 -p 8080:81 nginx", "auto", api_name="/analyze_ports")
    assert result["kind"] == "docker-run"
    assert [m["host_port"] for m in result["mappings"]] == [8080, 8080]
    assert result["diagnostics"][0]["code"] == "host-port-conflict"


def test_bad_input_is_a_clear_error_and_the_server_keeps_serving(client):
    with pytest.raises(Exception, match="neither"):
        client.predict("not ports at all", "auto", api_name="/analyze_ports")
    result = client.predict('services:\n  web:\n    ports: ["7860:7860"]\n', "compose", api_name="/analyze_ports")
    assert result["mappings"][0]["container_port"] == 7860


def test_tab_endpoints_are_named_for_the_tab(client):
    endpoints = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert "/analyze_ports" in endpoints
    assert all(name == "/analyze_ports" or name.startswith("/ports_") for name in endpoints)


def test_well_known_endpoint(client):
    assert client.predict(8501, api_name="/ports_well_known") == "8501 is Streamlit's default port."


def test_the_tab_renders_mermaid_and_never_raises_on_bad_input():
    diagram, sentences, problems, rows, path = show_text("docker run -p 22:22 --name ssh img", "auto")
    assert diagram.startswith("```mermaid\nflowchart LR") and diagram.endswith("```")
    assert "extension 22" in sentences and "privileged-port" in problems and rows[0][1] == "all addresses:22"
    assert open(path).read() in diagram
    for text, reason in [("", "neither"), ("a: \"", "cannot be read"), ("[" * 5000, "nested more than")]:
        with pytest.warns(UserWarning, match=reason):  # gr.Warning outside a request
            diagram, sentences, problems, rows, path = show_text(text, "auto")
        assert (diagram, rows, path) == ("", [], None) and reason in problems
