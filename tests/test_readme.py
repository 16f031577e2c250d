"""The README's examples for programs, run as a reader would paste them, against the running app."""

from __future__ import annotations

import re
import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from app import parse_args

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
DOCUMENTED_URL = "http://127.0.0.1:7860/"


def blocks(heading: str, language: str) -> list[str]:
    """The fenced code blocks of one `## heading` section."""
    section = README.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    found = re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)
    assert found, f"no {language} example under '{heading}'"
    return found


def on(url: str, code: str) -> str:
    return code.replace(DOCUMENTED_URL, url).replace(DOCUMENTED_URL.rstrip("/"), url.rstrip("/"))


@pytest.mark.parametrize("heading, printed", [("Use it with OpenAI clients", "CompletionUsage"), ("MCP", "analyze_ports")])
def test_the_python_examples_run(running_app, capsys, heading, printed):
    [code] = blocks(heading, "python")
    program = compile(on(running_app[0], code), f"README: {heading}", "exec")
    # In a thread of its own, as a fresh script would be: the browser tests keep an event loop in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(exec, program, {}).result()  # noqa: S102 - the README's own example
    assert printed in capsys.readouterr().out


def test_the_metrics_example_shows_the_counts(running_app):
    [code] = blocks("Metrics", "bash")
    curl = on(running_app[0], code.splitlines()[0])
    shown = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=60).stdout
    assert 'playground_requests_total{outcome="done"}' in shown and "playground_kv_cache_usage_ratio" in shown


def test_the_other_engine_example_is_a_command_the_app_takes():
    [code] = blocks("Use another engine", "bash")
    command = shlex.split(code.split("#")[0])
    assert command[:2] == ["python", "app.py"]
    args = parse_args(command[2:])
    assert args.backend_url == "http://127.0.0.1:7860/v1" and args.port == 7861
