"""Faults inside the engine: a step that raises ends only its own requests; a dead scheduler says so."""

from __future__ import annotations

import pytest
from gradio_client import Client
from prometheus_client.parser import text_string_to_metric_families

import model_runtime
from demos.model_slot import ready_line
from model_runtime import GenerationParams
from serving.metrics import Metrics
from tests.helpers import wait_for

HELLO = [{"role": "user", "content": "Hello there"}]
GREEDY = GenerationParams(temperature=0, max_new_tokens=24)


@pytest.fixture
def engine(tiny_model_dir):
    """An engine of the test's own: a fault must not reach the suite's shared ones."""
    engine = model_runtime.load(str(tiny_model_dir), quantization="none", max_batch=2, max_seq_len=256)
    yield engine
    engine.close()


def gauge(metrics: Metrics, name: str) -> float:
    samples = {s.name: s.value for f in text_string_to_metric_families(metrics.text().decode()) for s in f.samples}
    return samples[name]


def test_a_failed_step_ends_only_its_requests_and_the_engine_goes_on(engine):
    before = engine.complete(HELLO, GREEDY).text
    engine.inject_fault(after_steps=3)
    in_the_step = [engine.stream(HELLO, GenerationParams(temperature=0.8, max_new_tokens=200, seed=i)) for i in range(2)]
    waiting = engine.stream(HELLO, GREEDY)  # two slots: this one waits, outside the failing step
    ends = [list(stream)[-1].stats for stream in in_the_step]
    assert [s.finish_reason for s in ends] == ["error", "error"]
    assert all("injected fault" in s.error for s in ends)
    assert "".join(e.text for e in waiting) == before and waiting.stats.finish_reason != "error"
    wait_for(lambda: engine.info()["active_requests"] == 0)
    info = engine.info()
    assert info["step_faults"] == 1 and info["finished_requests"]["error"] == 2
    # What the failed step may have left in its slots' caches is not reused: the same reply again.
    assert engine.complete(HELLO, GREEDY).text == before
    metrics = Metrics(engine.info)
    assert gauge(metrics, "playground_engine_step_faults_total") == 1


def test_a_dead_scheduler_fails_its_readers_and_refuses_new_requests(engine, monkeypatch):
    def broken():
        raise MemoryError("the scheduler's own bookkeeping failed")

    monkeypatch.setattr(engine, "_admit_waiting", broken)
    stream = engine.stream(HELLO, GREEDY)
    last = list(stream)[-1].stats
    assert last.finish_reason == "error" and "stopped working" in last.error
    with pytest.raises(RuntimeError, match="stopped working.*restart the app"):
        engine.stream(HELLO, GREEDY)
    assert "The model stopped working (MemoryError" in ready_line(engine.info())
    assert gauge(Metrics(engine.info), "playground_scheduler_stopped") == 1


def test_the_chat_says_a_fault_happened_and_the_next_message_is_answered(running_app, tiny_engine):
    client = Client(running_app[0], verbose=False)
    plain = ("", 0.0, 1.0, 24, 1.0, False)
    tiny_engine.inject_fault()
    reply, stats, _ = client.predict("Hello there", *plain, api_name="/chat")
    assert "failed: RuntimeError: an injected fault in this step" in stats
    reply, stats, _ = client.predict("Hello there", *plain, api_name="/chat")
    assert reply and "failed" not in stats
