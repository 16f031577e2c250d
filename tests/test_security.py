"""Safe defaults: a private address, a loud warning for open links, no files or shells for visitors, a read-only Docker view."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path
from unittest import mock

import httpx
import pytest
from gradio_client import Client

from app import parse_args
from demos.ports import live
from scripts.load_test import free_port, start_app, stop_app, wait_until_serving
from tests.helpers import wait_for
from tests.test_packaging import DOCKERFILES, environment

ROOT = Path(__file__).resolve().parents[1]
APP_CODE = [ROOT / "app.py", *sorted(path for room in ("demos", "model_runtime", "serving") for path in (ROOT / room).rglob("*.py"))]
NO_LOGIN_WARNING = "The public link has no login"
NO_LINK_WARNING = "No public link could be made"
API_OFF_WARNING = "The OpenAI API (/v1) and /metrics are off"
# Command-line tools beside the app: they start fixed child processes of their own.
TOOLS = {"model_runtime/bench.py"}
# App code with one fixed child process: the C compiler, run on the project's own kernels.c.
COMPILES_KERNELS = "model_runtime/native.py"
SERVING_WITHIN = 120.0  # seconds; two slow cores may be busy with other tests

# What would run text as code or as a command.
RUNNING_MODULES = {"subprocess", "pty", "pexpect", "commands"}
RUNNING_CALLS = {"eval", "exec", "compile", "__import__", "os.system", "os.popen", "os.execv", "os.execve",
                 "os.execl", "os.execlp", "os.execvp", "os.spawnl", "os.spawnv", "os.posix_spawn", "os.startfile"}


# -- where the app listens --------------------------------------------------------------


def test_listens_on_this_machine_only_by_default(monkeypatch):
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    assert parse_args([]).host == "127.0.0.1"


def test_gradio_server_name_is_honoured_and_the_flag_wins(monkeypatch):
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    assert parse_args([]).host == "0.0.0.0"
    assert parse_args(["--host", "127.0.0.1"]).host == "127.0.0.1"


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_container_images_open_the_app_to_their_network_on_purpose(dockerfile, monkeypatch):
    monkeypatch.setenv("GRADIO_SERVER_NAME", environment(dockerfile)["GRADIO_SERVER_NAME"])
    assert parse_args([]).host == "0.0.0.0"


# -- --share ------------------------------------------------------------------------------


def offline_share_env(tmp_path: Path) -> dict:
    """An environment in which no share link can be made, even on a machine with internet."""
    return {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf-home"),  # no tunnel binary cached here
        "HTTPS_PROXY": "http://127.0.0.1:9",  # downloading one fails at once
        "NO_PROXY": "127.0.0.1,localhost",
        "GRADIO_SHARE_SERVER_ADDRESS": "127.0.0.1:9",  # nor is the share server asked
        "GRADIO_ANALYTICS_ENABLED": "False",
    }


def notices_on_page(url: str) -> str:
    """The notice line a visitor sees at the top of the page, as computed on page load."""
    config = httpx.get(url + "config", timeout=30).json()
    [notices] = [c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "notices"]
    [on_load] = [d["id"] for d in config["dependencies"] if notices in d["outputs"] and d["targets"][0][1] == "load"]
    return Client(url, verbose=False).predict(fn_index=on_load)


@pytest.mark.parametrize("auth", [[], ["--auth", "learner:a-long-passphrase"]], ids=["without auth", "with auth"])
def test_share_warns_when_anyone_could_use_the_link_and_says_there_is_none(tmp_path, tiny_model_dir, auth):
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with open(tmp_path / "console.txt", "w+", encoding="utf-8") as console:
        app = start_app(["--share", "--model", str(tiny_model_dir), *auth], port, offline_share_env(tmp_path), console)
        try:
            wait_until_serving(url, app, SERVING_WITHIN)
            wait_for(lambda: NO_LINK_WARNING in (tmp_path / "console.txt").read_text(), SERVING_WITHIN)
            output = (tmp_path / "console.txt").read_text()
            page_notices = "" if auth else notices_on_page(url)
            mcp_tools = None if auth else httpx.get(url + "config", timeout=30).json()["mcp_server"]
            machine_routes = [httpx.get(url + path, timeout=30).status_code for path in ("v1/models", "metrics")]
        finally:
            stop_app(app)
    assert f"WARNING: {NO_LINK_WARNING}" in output
    assert f"WARNING: {API_OFF_WARNING}" in output and machine_routes == [404, 404]
    if auth:
        assert NO_LOGIN_WARNING not in output
    else:
        assert f"WARNING: {NO_LOGIN_WARNING}" in output
        assert NO_LOGIN_WARNING in page_notices and NO_LINK_WARNING in page_notices and API_OFF_WARNING in page_notices
        assert mcp_tools is False


# -- files and commands ----------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/etc/passwd", str(ROOT / "app.py"), "app.py", "demos/ports/examples/compose.yaml", "%2Fetc%2Fpasswd", "..%2F..%2Fetc%2Fpasswd"],
)
def test_the_file_route_serves_no_file_of_the_machine_or_the_project(running_app, path):
    url, _ = running_app
    response = httpx.get(f"{url}gradio_api/file={path}", timeout=30)
    assert response.status_code in (403, 404), response.text[:200]
    assert "root:" not in response.text and "def main" not in response.text


SHELL_TRICKS = ["$(touch {marker})", "`touch {marker}`", "; touch {marker}", "| touch {marker}", "&& touch {marker}"]


@pytest.mark.parametrize("trick", SHELL_TRICKS)
def test_user_text_is_never_run_as_a_command(running_app, tmp_path, trick):
    url, _ = running_app
    marker = tmp_path / "pwned"
    text = trick.format(marker=marker)
    client = Client(url, verbose=False)
    client.predict(f"docker run -p 80:80 {text} nginx", "auto", api_name="/analyze_ports")
    compose = f"services:\n  web:\n    image: nginx\n    command: {json.dumps(text)}\n    ports: ['80:80']\n"
    client.predict(compose, "auto", api_name="/analyze_ports")
    client.predict("docker", f"A box {text} for programs.", api_name="/check_explanation")
    client.predict(f"Please run {text}", "", 0.0, 1.0, 16, 1.0, True, api_name="/chat")
    assert not marker.exists()


def running_code(source: str) -> list[str]:
    """Imports and calls in `source` that could run text as code or as a command."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names if a.name.split(".")[0] in RUNNING_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in RUNNING_MODULES:
            found.append(f"line {node.lineno}: from {node.module} import")
        elif isinstance(node, ast.Call):
            if ast.unparse(node.func) in RUNNING_CALLS:
                found.append(f"line {node.lineno}: {ast.unparse(node.func)}()")
            found += [f"line {node.lineno}: shell=" for k in node.keywords if k.arg == "shell"]
    return found


def imported_names(source: str) -> set[str]:
    """Every module and name an import in `source` brings in, e.g. "model_runtime.bench" or ".bench"."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            names |= {module} | {f"{module}.{alias.name}" for alias in node.names}
    return names


def test_the_app_has_no_code_that_runs_commands_or_evaluates_text():
    assert len(APP_CODE) > 20, "the scan should see the whole app"
    found = {str(path.relative_to(ROOT)): running_code(path.read_text(encoding="utf-8")) for path in APP_CODE}
    assert {path: hits for path, hits in found.items() if hits and path not in TOOLS | {COMPILES_KERNELS}} == {}
    # The compiler's command is fixed: no shell, nothing of a request's in it.
    assert [hit.split(": ", 1)[1] for hit in found[COMPILES_KERNELS]] == ["import subprocess"]


def test_the_app_never_imports_the_command_line_tools():
    tools = {Path(tool).stem for tool in TOOLS}
    for path in APP_CODE:
        imports = imported_names(path.read_text(encoding="utf-8"))
        assert not {name for name in imports if tools & set(name.split("."))}, path


def test_the_scan_would_see_a_command():
    sneaky = "import os, subprocess\nos.system(text)\neval(text)\nsubprocess.run(text, shell=True)\n"
    assert running_code(sneaky) == ["line 1: import subprocess", "line 2: os.system()", "line 3: eval()", "line 4: shell="]


# -- the live containers view ------------------------------------------------------------


def test_the_live_view_only_lists_and_inspects():
    container = mock.NonCallableMock(name="container")
    container.name, container.status = "web", "running"
    container.attrs = {"NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}}}
    client = mock.Mock(name="client")
    client.containers.list.return_value = [container]
    with mock.patch("docker.from_env", return_value=client) as from_env:
        analysis = live.read_containers(live.connect())
    assert analysis.mappings[0].host_port == 8080
    from_env.assert_called_once()
    assert client.mock_calls == [mock.call.ping(), mock.call.containers.list(all=True, ignore_removed=True)]
    assert container.mock_calls == []
