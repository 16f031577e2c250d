"""The app's MCP tools, listed and called by the MCP Python SDK over the app's own endpoint."""

from __future__ import annotations

import ast
import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

TOOLS = {"chat", "eli5_fresh_analogy", "eli5_ask_model", "check_explanation", "eli5_explainer", "ports_live",
         "ports_well_known", "analyze_ports"}


def with_session(url: str, work):
    """Run work(session) in an MCP session with the app at `url`, in a thread of its own: the
    browser tests' Playwright keeps an event loop running in this one."""

    async def run():
        async with streamablehttp_client(f"{url}gradio_api/mcp/") as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await work(session)

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


def call(url: str, name: str, arguments: dict):
    result = with_session(url, lambda session: session.call_tool(name, arguments))
    return result, "".join(part.text for part in result.content if part.type == "text")


def test_every_tool_is_named_and_described_for_an_assistant(running_app):
    tools = with_session(running_app[0], lambda session: session.list_tools()).tools
    assert {tool.name for tool in tools} == TOOLS
    for tool in tools:
        assert len(tool.description) > 40 and "partial(" not in tool.description, tool.name
        for name, field in tool.inputSchema["properties"].items():
            assert field.get("description"), f"{tool.name}({name}) is not described"


def test_the_ports_analysis_answers_over_mcp(running_app):
    result, text = call(running_app[0], "analyze_ports", {"text": "docker run -p 8080:80 nginx", "kind": "auto"})
    assert not result.isError
    analysis = ast.literal_eval(text)  # gradio sends a dict result as its Python repr; read back, not run
    [mapping] = analysis["mappings"]
    assert (mapping["host_port"], mapping["container_port"]) == (8080, 80)
    assert "public-bind" in {d["code"] for d in analysis["diagnostics"]}


@pytest.mark.parametrize(
    "name, arguments, words",
    [
        ("check_explanation", {"concept_id": "docker", "explanation": "Docker packs an app with everything it needs."}, "verdict"),
        ("eli5_explainer", {"concept_id": "ports"}, "```mermaid"),
        ("ports_well_known", {"number": 5432}, "PostgreSQL"),
    ],
)
def test_the_course_tools_answer_over_mcp(running_app, name, arguments, words):
    result, text = call(running_app[0], name, arguments)
    assert not result.isError and words in text


def test_a_bad_argument_is_an_error_with_the_reason(running_app):
    result, text = call(running_app[0], "eli5_explainer", {"concept_id": "helm"})
    assert result.isError and "Known concepts" in text
