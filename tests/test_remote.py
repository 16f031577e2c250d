"""The app on an engine elsewhere (--backend-url): here, another copy of the app, over its /v1."""

from __future__ import annotations

import gradio as gr
import openai
import pytest
from gradio_client import Client

from app import build_app, launch
from demos.model_slot import ModelSlot
from model_runtime import EngineBusy, GenerationParams, ModelLoadError
from model_runtime.remote import RemoteEngine
from scripts.load_test import free_port, served_app
from tests.conftest import serve_app
from tests.test_openai_api import HELLO

PLAIN_CHAT = ("", 0.0, 1.0, 24, 1.0, False)  # system prompt, temperature, top-p, max tokens, penalty, grounded


@pytest.fixture(scope="module")
def remote(running_app):
    engine = RemoteEngine(f"{running_app[0]}v1")
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def front_app(remote):
    """A second app whose chat is served by the first one's engine."""
    demo, url, slot = serve_app(remote, 2)
    yield url, slot
    demo.close()


def test_it_takes_the_model_and_context_the_engine_lists(remote, running_app):
    local = running_app[1].engine
    assert remote.name == local.info()["model"] and remote.max_seq_len == local.max_seq_len


def test_a_greedy_reply_is_the_remote_engines_own(remote, running_app):
    params = GenerationParams(temperature=0, max_new_tokens=16, repetition_penalty=1.3)
    events = list(remote.stream(HELLO, params))
    direct = running_app[1].engine.complete(HELLO, params)
    assert "".join(e.text for e in events) == direct.text
    stats = events[-1].stats
    assert stats.completion_tokens == direct.stats.completion_tokens and stats.prompt_tokens == direct.stats.prompt_tokens
    assert stats.time_to_first_token_s > 0 and stats.finish_reason == direct.stats.finish_reason


def test_the_chat_tab_answers_through_it_and_times_it_here(front_app, running_app):
    reply, stats, _ = Client(front_app[0], verbose=False).predict("What is a container?", *PLAIN_CHAT, api_name="/chat")
    direct, _, _ = Client(running_app[0], verbose=False).predict("What is a container?", *PLAIN_CHAT, api_name="/chat")
    assert reply == direct and reply
    assert "s to first token" in stats and "tokens in" in stats
    assert "served by the engine at" in front_app[1].status()


def test_tokens_are_counted_by_the_engine_itself(remote, running_app):
    messages = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Explain port 7860 " * 20}]
    assert remote.count_tokens(messages) == running_app[1].engine.count_tokens(messages)
    assert remote.info()["token_counts"].startswith("exact")


def test_without_a_tokenize_route_tokens_are_estimated_generously(remote, monkeypatch):
    monkeypatch.setattr(remote, "tokenize_url", remote.url + "/no-such-route")
    monkeypatch.setattr(remote, "counts_exactly", True)
    text = "A container is a running copy of an image. " * 10
    assert remote.count_tokens([{"role": "user", "content": text}]) >= len(text) // 3
    assert remote.info()["token_counts"].startswith("estimated")


def test_a_busy_engine_says_so(remote, running_app, paced_engine, monkeypatch):
    monkeypatch.setattr(paced_engine, "max_waiting", 0)
    client = openai.OpenAI(base_url=f"{running_app[0]}v1", api_key="x", max_retries=0)
    streams = [client.chat.completions.create(model=remote.name, messages=HELLO, max_tokens=200, temperature=0.8, seed=1, stream=True)
               for _ in range(paced_engine.max_batch)]
    try:
        for stream in streams:
            next(iter(stream))
        with pytest.raises(EngineBusy, match="busy"):
            list(remote.stream(HELLO))
    finally:
        for stream in streams:
            stream.close()


def test_an_unreachable_engine_is_named_when_loading():
    with pytest.raises(ModelLoadError, match=r"cannot reach the engine at http://127\.0\.0\.1:\d+/v1"):
        RemoteEngine(f"http://127.0.0.1:{free_port()}/v1")


def test_an_unknown_remote_model_is_named(running_app):
    with pytest.raises(ModelLoadError, match="not 'llama-70b'"):
        RemoteEngine(f"{running_app[0]}v1", model="llama-70b")


def test_an_engine_that_goes_away_gives_a_clear_message_in_the_chat(tiny_engine):
    slot = ModelSlot()
    slot.engine = tiny_engine
    with gr.Blocks() as backend:
        gr.Markdown("a short-lived engine")
    front = ModelSlot()
    demo = build_app(front, concurrency=2)
    demo.queue()
    _, front_url, _ = launch(demo, front, server_name="127.0.0.1", quiet=True)  # first, so that it cannot take the port
    _, url, _ = launch(backend, slot, server_name="127.0.0.1", quiet=True)
    front.engine = gone = RemoteEngine(f"{url}v1")
    backend.close()
    try:
        reply, stats, _ = Client(front_url, verbose=False).predict("Hello", *PLAIN_CHAT, api_name="/chat")
        assert reply == "" and f"failed: the engine at {url}v1 failed" in stats
        assert gone.info()["last_error"] and "Its latest reply failed" in front.status()
        # The other tabs keep serving.
        analysis = Client(front_url, verbose=False).predict("docker run -p 80:80 nginx", "auto", api_name="/analyze_ports")
        assert analysis["mappings"]
    finally:
        demo.close()
        gone.close()


def test_a_second_app_uses_the_first_as_its_backend(tiny_model_dir):
    """Two real app processes on loopback: the second started with --backend-url pointing at the first."""
    with served_app(None, ["--model", str(tiny_model_dir), "--quantization", "none"]) as (engine_url, _):
        with served_app(None, ["--backend-url", f"{engine_url}v1"]) as (front_url, _):
            reply, stats, _ = Client(front_url, verbose=False).predict("Hello", *PLAIN_CHAT, api_name="/chat")
            direct, _, _ = Client(engine_url, verbose=False).predict("Hello", *PLAIN_CHAT, api_name="/chat")
    assert reply == direct and "tokens in" in stats


@pytest.mark.parametrize("argv, itself", [
    (["--port", "7860", "--backend-url", "http://127.0.0.1:7860/v1"], True),
    (["--port", "7860", "--backend-url", "http://localhost:7860/v1"], True),
    (["--port", "7861", "--backend-url", "http://127.0.0.1:7860/v1"], False),
    (["--port", "80", "--backend-url", "http://spark.local/v1"], False),
])
def test_an_app_is_not_its_own_backend(argv, itself):
    from app import parse_args, points_at_itself

    assert points_at_itself(parse_args(argv)) is itself
