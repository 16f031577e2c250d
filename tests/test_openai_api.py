"""The app's /v1 routes, driven by the official openai client and read back through /metrics."""

from __future__ import annotations

import threading

import gradio as gr
import httpx
import openai
import pytest
from gradio_client import Client
from prometheus_client.parser import text_string_to_metric_families

from app import launch, parse_args, why_api_is_off
from demos.chat_logic import MAX_MESSAGE_CHARS
from demos.model_slot import ModelSlot
from tests.helpers import wait_for

HELLO = [{"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
def client(running_app):
    url, slot = running_app
    return openai.OpenAI(base_url=f"{url}v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def model(client):
    return client.models.list().data[0].id


def metrics(url: str) -> dict[str, float]:
    """Every sample of /metrics by name and labels, parsed by prometheus-client's own parser."""
    text = httpx.get(f"{url}metrics", timeout=30).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_models_lists_the_loaded_model(client, running_app):
    cards = client.models.list().data
    assert [card.id for card in cards] == [running_app[1].engine.info()["model"]]
    assert cards[0].model_extra["max_model_len"] == running_app[1].engine.max_seq_len


def test_a_reply_counts_its_tokens_and_times_them(client, model, running_app):
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "system", "content": "Be brief."}, *HELLO], max_tokens=12, temperature=0
    )
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason in ("stop", "length")
    prompt = running_app[1].engine.count_tokens([{"role": "system", "content": "Be brief."}, *HELLO])
    assert reply.usage.prompt_tokens == prompt
    assert 1 <= reply.usage.completion_tokens <= 12
    assert reply.usage.total_tokens == prompt + reply.usage.completion_tokens
    timings = reply.model_extra["timings"]
    assert timings["predicted_n"] == reply.usage.completion_tokens
    assert timings["time_to_first_token_ms"] > 0


def test_a_seeded_reply_is_the_engines_own(client, model, running_app):
    """The API adds nothing to the model's words: they are what the engine gives for the same request."""
    from model_runtime import GenerationParams

    asked = client.chat.completions.create(model=model, messages=HELLO, max_tokens=16, temperature=0.8, seed=7,
                                           extra_body={"repetition_penalty": 1.0})
    direct = running_app[1].engine.complete(HELLO, GenerationParams(temperature=0.8, top_p=0.9, max_new_tokens=16,
                                                                    repetition_penalty=1.0, seed=7))
    assert asked.choices[0].message.content == direct.text


def test_streaming_sends_the_text_then_usage(client, model):
    whole = client.chat.completions.create(model=model, messages=HELLO, max_tokens=16, temperature=0)
    chunks = list(client.chat.completions.create(model=model, messages=HELLO, max_tokens=16, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_a_stop_sequence_ends_the_reply_before_it(client, model):
    whole = client.chat.completions.create(model=model, messages=HELLO, max_tokens=24, temperature=0).choices[0].message.content
    stop = whole[len(whole) // 2:][:3]
    assert stop.strip(), whole
    cut = client.chat.completions.create(model=model, messages=HELLO, max_tokens=24, temperature=0, stop=[stop])
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].message.content == whole[: whole.index(stop)]


def test_a_client_that_leaves_frees_its_slot(client, model, running_app, paced_engine):
    finished = dict(paced_engine.info()["finished_requests"])
    stream = client.chat.completions.create(model=model, messages=HELLO, max_tokens=200, temperature=0.8, seed=1, stream=True)
    for _, chunk in zip(range(3), stream):
        pass
    assert paced_engine.info()["active_requests"] == 1
    stream.close()
    wait_for(lambda: paced_engine.info()["active_requests"] == 0, timeout=10)
    assert paced_engine.info()["finished_requests"].get("cancelled", 0) == finished.get("cancelled", 0) + 1
    after = metrics(running_app[0])
    assert after[("playground_requests_total", (("outcome", "stopped"),))] >= 1


@pytest.mark.parametrize(
    "messages, words",
    [
        ([], "non-empty list"),
        ([{"role": "robot", "content": "hi"}], "role must be one of"),
        ([{"role": "user", "content": "x" * (MAX_MESSAGE_CHARS + 1)}], "characters long"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x"}}]}], "text only"),
        ([{"role": "user", "content": "word " * 400}], "context"),
    ],
    ids=["empty", "bad role", "oversized", "an image", "context overflow"],
)
def test_refusals_say_why_in_openais_shape(client, model, messages, words):
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=model, messages=messages)
    assert words in refused.value.body["message"]
    assert refused.value.body["type"] == "invalid_request_error"


def test_an_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as refused:
        client.chat.completions.create(model="gpt-9", messages=HELLO)
    assert refused.value.body["code"] == "model_not_found"


def test_bad_json_is_refused(running_app):
    answer = httpx.post(f"{running_app[0]}v1/chat/completions", content=b"{not json", timeout=30)
    assert answer.status_code == 400 and "not valid JSON" in answer.json()["error"]["message"]


def test_a_full_queue_answers_busy_for_the_api_and_the_page(client, model, running_app, paced_engine, monkeypatch):
    monkeypatch.setattr(paced_engine, "max_waiting", 0)
    streams = [client.chat.completions.create(model=model, messages=HELLO, max_tokens=200, temperature=0.8, seed=1, stream=True)
               for _ in range(paced_engine.max_batch)]
    try:
        for stream in streams:
            next(iter(stream))
        with pytest.raises(openai.RateLimitError) as busy:
            client.chat.completions.create(model=model, messages=HELLO, max_tokens=4)
        assert "busy" in busy.value.body["message"]
        with pytest.raises(Exception, match="busy"):
            Client(running_app[0], verbose=False).predict("Hello", api_name="/chat")
    finally:
        for stream in streams:
            stream.close()
    counts = metrics(running_app[0])
    assert counts[("playground_requests_total", (("outcome", "busy"),))] >= 2


def test_metrics_count_what_was_served(client, model, running_app):
    before = metrics(running_app[0])
    reply = client.chat.completions.create(model=model, messages=HELLO, max_tokens=8, temperature=0)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "word " * 400}])
    after = metrics(running_app[0])

    def grew(name, labels=()):
        return after[(name, labels)] - before.get((name, labels), 0)

    assert grew("playground_requests_total", (("outcome", "done"),)) == 1
    assert grew("playground_tokens_predicted_total") == reply.usage.completion_tokens
    assert grew("playground_prompt_tokens_total") == reply.usage.prompt_tokens
    assert grew("playground_time_to_first_token_seconds_count") == 1
    assert after[("playground_slots_total", ())] == running_app[1].engine.max_batch
    assert after[("playground_model_loaded", ())] == 1
    assert 0 <= after[("playground_kv_cache_usage_ratio", ())] <= 1


def test_gradios_load_chat_talks_to_the_api(running_app, model):
    chat = gr.load_chat(f"{running_app[0]}v1", model=model, token="unused")
    _, url, _ = chat.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        reply = Client(url, verbose=False).predict({"text": "Hello there", "files": []}, api_name="/open_api_stream")
    finally:
        chat.close()
    assert isinstance(reply, str) and reply.strip()


@pytest.fixture(scope="module")
def keyed_app(tiny_engine):
    slot = ModelSlot()
    slot.engine = tiny_engine
    with gr.Blocks() as demo:
        gr.Markdown("keyed")
    _, url, _ = launch(demo, slot, api_key="sk-right", server_name="127.0.0.1", quiet=True)
    yield url
    demo.close()


@pytest.mark.parametrize("key", [None, "sk-wrong"], ids=["missing", "wrong"])
def test_a_key_is_asked_for_when_one_is_set(keyed_app, key):
    if key is None:
        answer = httpx.get(f"{keyed_app}v1/models", timeout=30)
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "invalid_api_key"
        assert httpx.get(f"{keyed_app}metrics", timeout=30).status_code == 401
        return
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{keyed_app}v1", api_key=key, max_retries=0).models.list()


def test_the_right_key_gets_a_reply(keyed_app, tiny_engine):
    keyed = openai.OpenAI(base_url=f"{keyed_app}v1", api_key="sk-right", max_retries=0)
    name = keyed.models.list().data[0].id
    assert keyed.chat.completions.create(model=name, messages=HELLO, max_tokens=4).usage.completion_tokens >= 1


def test_a_public_link_or_a_login_without_a_key_turns_the_api_off():
    assert why_api_is_off(parse_args([]), None) is None
    assert "--api-key" in why_api_is_off(parse_args(["--share"]), None)
    assert "--api-key" in why_api_is_off(parse_args(["--auth", "me:pw"]), [("me", "pw")])
    assert why_api_is_off(parse_args(["--share", "--api-key", "k"]), None) is None


def test_a_request_sent_while_the_model_loads_waits_for_it(tiny_engine):
    slot = ModelSlot()
    with gr.Blocks() as demo:
        gr.Markdown("loading")
    _, url, _ = launch(demo, slot, server_name="127.0.0.1", quiet=True)
    try:
        ready = threading.Timer(1.0, lambda: setattr(slot, "engine", tiny_engine))
        ready.start()
        cards = openai.OpenAI(base_url=f"{url}v1", api_key="x", max_retries=0).models.list().data
        assert cards[0].id == tiny_engine.info()["model"]
    finally:
        demo.close()
