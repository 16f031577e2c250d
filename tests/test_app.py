"""The whole app, launched and used through gradio_client as a person's browser would."""

from __future__ import annotations

import threading

import pytest
from gradio_client import Client

from app import build_app, credentials, parse_args
from demos.chat import checked_against_the_course, respond
from demos.course.guard import Support
from demos.course.knowledge import passages
from demos.model_slot import ModelSlot, ready_line
from model_runtime import GenerationParams
from tests.helpers import wait_for

SYSTEM = "Be brief."


def chat_args(message, max_new_tokens=40, grounded=False):
    """/chat's inputs: greedy, no repetition penalty and, unless asked, no course notes, so the
    reply can be compared with the engine's own."""
    return (message, SYSTEM, 0.0, 1.0, max_new_tokens, 1.0, grounded)


@pytest.fixture(scope="module")
def client(running_app):
    url, _ = running_app
    return Client(url, verbose=False)


def expected_reply(engine, message, max_new_tokens=40):
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": message}]
    return engine.complete(messages, GenerationParams(temperature=0, top_p=1.0, max_new_tokens=max_new_tokens)).text


def test_all_three_tabs_offer_their_endpoints(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/chat", "/check_explanation", "/analyze_ports"} <= set(endpoints)


def test_chat_with_defaults_only(client):
    reply, stats, sources = client.predict("Hello", api_name="/chat")
    assert reply.strip()
    assert "tokens in" in stats
    assert sources == [] and "not covered by the course" in stats, "a greeting cites no course passage"


def test_a_course_question_returns_its_sources_as_data(client):
    question = "Which port does Streamlit use by default?"  # short notes: the tiny model's context is small
    _, stats, sources = client.predict(*chat_args(question, grounded=True), api_name="/chat")
    by_id = {passage.id: passage for passage in passages()}
    assert sources, "a course question is answered from the course"
    for source in sources:
        assert set(source) == {"id", "concept", "title", "text", "kind", "tab"}
        assert source["text"] == by_id[source["id"]].text, "the course's own words, unchanged"
    assert sources[0]["id"] == "port/8501" and sources[0]["tab"] == "eli5"
    assert "not covered" not in stats


def test_notes_too_long_for_the_context_are_named_as_the_reason(client):
    """Half of the tiny model's 256 tokens go to a long reply; no note fits the rest, and the stats line says so."""
    question = "Which port does Streamlit use by default?"
    _, stats, sources = client.predict(*chat_args(question, max_new_tokens=256, grounded=True), api_name="/chat")
    assert sources == []
    assert "did not fit the model's context window" in stats and "not covered" not in stats


def test_grounding_off_is_a_plain_chat(client, running_app):
    _, slot = running_app
    question = "What is Docker Compose?"
    reply, stats, sources = client.predict(*chat_args(question), api_name="/chat")
    assert sources == [] and "not covered" not in stats
    assert reply == expected_reply(slot.engine, question)


def test_the_sources_are_the_notes_the_model_was_given(running_app, monkeypatch):
    """No source is cited that the model did not read: each one is in the prompt's newest turn.
    A reply that goes on to write the next question in the turn's format ends there."""
    _, slot = running_app
    prompts, asked = [], []
    real_stream = slot.stream
    monkeypatch.setattr(slot, "stream", lambda messages, params: prompts.append(messages) or asked.append(params) or real_stream(messages, params))
    question = "Which port does Streamlit use?"
    *_, (reply, stats, sources) = respond(slot, question, [], SYSTEM, 0.0, 1.0, 24)
    newest = prompts[0][-1]["content"]
    assert "\nQuestion:" in asked[0].stop and "\nQuestion:" in newest
    assert newest.endswith(f"Question: {question}") and sources
    assert all(passage.plain_text in newest for passage in sources)
    assert prompts[0][:-1] == [{"role": "system", "content": SYSTEM}], "nothing but the notes changes the turn"


def test_the_next_turn_starts_with_the_conversation_the_model_read_last(roomy_app, monkeypatch):
    """Earlier questions keep the notes they were answered from, so the engine prefills only the newest exchange."""
    _, slot = roomy_app
    prompts = []
    real_stream = slot.stream
    monkeypatch.setattr(slot, "stream", lambda messages, params: prompts.append(messages) or real_stream(messages, params))
    *_, (first, _, _) = respond(slot, "What is a Docker image?", [], SYSTEM, 0.0, 1.0, 24)
    history = [{"role": "user", "content": "What is a Docker image?"}, {"role": "assistant", "content": first}]
    list(respond(slot, "And a container?", history, SYSTEM, 0.0, 1.0, 24))
    assert prompts[1][: len(prompts[0])] == prompts[0]
    assert prompts[1][2] == {"role": "assistant", "content": first}


@pytest.mark.parametrize("architecture", ["llama", "qwen2"])
def test_grounded_chat_on_the_architectures_of_the_spark_models(tiny_model_of, architecture):
    """Llama-3.2 and Qwen2.5 instruct models, which docs/DEPLOY.md suggests for the Spark, as tiny random ones."""
    import model_runtime

    engine = model_runtime.load(str(tiny_model_of(architecture)), quantization="none", max_batch=1, max_seq_len=1024)
    slot = ModelSlot()
    slot.engine = engine
    try:
        *_, (reply, stats, sources) = respond(slot, "Which port does Streamlit use?", [], SYSTEM, 0.0, 1.0, 24, 1.15, True)
    finally:
        engine.close()
    assert reply.strip() and "24 out" in stats
    assert sources and "8501" in sources[0].text


@pytest.mark.parametrize("message", ["?!?!... ...", "¿Qué es un contenedor de Docker?", "x" * 15_999])
def test_odd_messages_get_a_reply_or_a_clear_refusal(client, message):
    try:
        reply, stats, sources = client.predict(*chat_args(message, 16, grounded=True), api_name="/chat")
    except Exception as exc:  # refused: the reason says why
        assert "too long" in str(exc) or "at most" in str(exc)
    else:
        assert reply.strip() and "tokens in" in stats
    assert client.predict(*chat_args("Still there?", 16), api_name="/chat")[0], "the chat keeps serving"


def test_reply_streams_in_pieces_and_matches_the_engine(client, running_app):
    _, slot = running_app
    job = client.submit(*chat_args("Tell me about ports", 60), api_name="/chat")
    updates = [update[0] for update in job]
    reply, stats, _ = job.result()
    assert reply == expected_reply(slot.engine, "Tell me about ports", 60)
    assert len(updates) >= 2, "the reply should arrive in several pieces"
    assert all(reply.startswith(u) for u in updates if u), "each piece extends the one before"
    assert "60 out" in stats and "stopped at the token limit" in stats


def test_a_cancelled_reply_stops_the_model(client, running_app):
    _, slot = running_app
    info = slot.engine.info
    before = info()["finished_requests"].get("cancelled", 0)
    job = client.submit(*chat_args("Go on and on", 200), api_name="/chat")
    wait_for(lambda: job.status().code.name in ("ITERATING", "FINISHED"))
    job.cancel()
    wait_for(lambda: info()["finished_requests"].get("cancelled", 0) > before)
    wait_for(lambda: info()["active_requests"] == 0)


def test_two_chats_at_the_same_time(running_app):
    url, slot = running_app
    results = {}

    def chat(name, message):
        results[name] = Client(url, verbose=False).predict(*chat_args(message), api_name="/chat")[0]

    threads = [threading.Thread(target=chat, args=(n, m)) for n, m in [("a", "What is Compose?"), ("b", "Hi!")]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results["a"] == expected_reply(slot.engine, "What is Compose?")
    assert results["b"] == expected_reply(slot.engine, "Hi!")


def test_empty_message_is_a_clear_error_and_the_server_keeps_serving(client):
    with pytest.raises(Exception, match="empty"):
        client.predict(*chat_args("   "), api_name="/chat")
    assert client.predict(*chat_args("Still there?"), api_name="/chat")[0]


class HeldLoad:
    """A model load that waits until the test lets it finish (or fail)."""

    def __init__(self, outcome):
        self.release = threading.Event()
        self.outcome = outcome

    def __call__(self, report):
        report("Loading the model: 40%")
        self.release.wait(timeout=60)
        return self.outcome()


def launch(slot, grounded=True):
    demo = build_app(slot, grounded=grounded)
    demo.queue()
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    return demo, Client(url, verbose=False)


def test_page_serves_while_the_model_loads(tiny_engine):
    slot = ModelSlot()
    held = HeldLoad(lambda: tiny_engine)
    slot.load_in_background(held)
    demo, client = launch(slot)
    try:
        waiting = client.submit(*chat_args("Hi"), api_name="/chat")  # sent while the model loads: it waits
        wait_for(lambda: any("40%" in stats for _, stats, _ in waiting.outputs()))
        verdict = client.predict("ports", "Ports are like phone extensions.", api_name="/check_explanation")
        assert verdict["verdict"] in ("great", "good", "needs-work")
        assert not waiting.done()
        held.release.set()
        reply, stats, _ = waiting.result(timeout=60)
        assert reply == expected_reply(tiny_engine, "Hi") and "tokens in" in stats
    finally:
        demo.close()


def test_a_failed_load_is_shown_and_other_tabs_keep_working():
    def broken():
        raise FileNotFoundError("GGUF file not found: missing.gguf")

    slot = ModelSlot()
    held = HeldLoad(broken)
    held.release.set()
    slot.load_in_background(held).join(timeout=30)
    demo, client = launch(slot)
    try:
        with pytest.raises(Exception, match="could not be loaded: GGUF file not found"):
            client.predict(*chat_args("Hi"), api_name="/chat")
        result = client.predict("docker run -p 8080:80 nginx", api_name="/analyze_ports")
        assert result["mappings"][0]["host_port"] == 8080
    finally:
        demo.close()


def test_launch_options_have_safe_defaults(monkeypatch):
    for name in ("GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "PLAYGROUND_AUTH", "PLAYGROUND_MODEL"):
        monkeypatch.delenv(name, raising=False)
    args = parse_args([])
    assert (args.host, args.port, args.share, args.model, args.auth) == ("127.0.0.1", 7860, False, "default", [])
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "8000")
    monkeypatch.setenv("PLAYGROUND_AUTH", "ann:pw1,bob:pw2")
    args = parse_args(["--concurrency", "2", "--queue-size", "5"])
    assert (args.host, args.port, args.concurrency, args.queue_size) == ("0.0.0.0", 8000, 2, 5)
    assert credentials(args.auth) == [("ann", "pw1"), ("bob", "pw2")]


def test_grounding_can_be_turned_off_for_the_whole_app(monkeypatch, roomy_engine):
    monkeypatch.delenv("PLAYGROUND_GROUNDING", raising=False)
    assert parse_args([]).grounded and not parse_args(["--no-grounding"]).grounded
    monkeypatch.setenv("PLAYGROUND_GROUNDING", "0")
    assert not parse_args([]).grounded
    slot = ModelSlot()
    slot.engine = roomy_engine
    demo, client = launch(slot, grounded=False)
    try:
        _, stats, sources = client.predict("Which port does Streamlit use by default?", api_name="/chat")
    finally:
        demo.close()
    assert sources == [] and "course" not in stats, "the chat starts as a plain one"


def test_auth_file_and_bad_auth(tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("ann:pw1\n\nbob:p:w2\n")
    assert credentials(parse_args(["--auth-file", str(users)]).auth) == [("ann", "pw1"), ("bob", "p:w2")]
    with pytest.raises(SystemExit, match="USER:PASSWORD"):
        credentials(["no-password"])


def test_the_ready_line_speaks_plainly(tiny_engine):
    line = ready_line(tiny_engine.info())
    assert line.startswith("Model ready: ") and "M parameters, running on the CPU" in line
    assert ready_line({**tiny_engine.info(), "backend": "cuda", "cuda_graphs": True}).endswith("running on the GPU, replaying CUDA graphs.")


def test_a_left_out_myth_brings_the_course_s_mix_up_under_the_reply():
    given = [p for p in passages() if p.id == "port/8501"]
    support = Support(" ".join(p.plain_text for p in given))
    shown, sources = checked_against_the_course("Docker is a virtual machine.", given, support, finished=True)
    assert [p.id for p in sources] == ["port/8501", "docker/mix-up"]
    assert shown.startswith("✂️ *The model's whole reply is left out: a sentence that repeated a common mix-up")
