"""The embedded SmolLM2-135M-Instruct, loaded for real from its GGUF file."""

from __future__ import annotations

import re

import pytest

import model_runtime
from model_runtime import GenerationParams
from model_runtime import native, prepare
from model_runtime.cpu import saved_packing, weight_format
from model_runtime.quantize import CPU_WEIGHTS, Float16Linear, GroupedLinear, Q8_0Linear, quantize_cpu
from tests.test_engine import reference_ids, run_together

pytestmark = pytest.mark.slow

QUESTIONS = [
    [{"role": "user", "content": "What is Docker? Answer in one sentence."}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a port Gradio uses."}],
]


@pytest.fixture(scope="module")
def exact_engine():
    engine = model_runtime.load("default", quantization="none", max_batch=4, max_seq_len=512)
    yield engine
    engine.close()


def test_default_engine_answers_in_english():
    engine = model_runtime.load(max_batch=1, max_seq_len=512)
    try:
        assert engine.info()["quantization"].startswith(CPU_WEIGHTS[weight_format("auto")].words)
        done = engine.complete(QUESTIONS[0], GenerationParams(temperature=0, max_new_tokens=60))
        words = re.findall(r"[A-Za-z']+", done.text)
        assert len(words) >= 5, done.text
        assert sum(w.lower() in {"a", "is", "the", "to", "and", "of", "that", "docker", "it"} for w in words) >= 2
        assert done.stats.finish_reason in ("stop", "length")
    finally:
        engine.close()


def test_greedy_ids_equal_transformers_on_the_real_model(exact_engine):
    for messages in QUESTIONS:
        done = exact_engine.complete(messages, GenerationParams(temperature=0, max_new_tokens=32))
        expected = reference_ids(exact_engine, messages, 32)
        # Both keep the end-of-turn token as the last id when the reply ends early.
        assert done.token_ids == expected[: len(done.token_ids)]
        assert len(done.token_ids) == 32 or done.token_ids[-1] == exact_engine.tokenizer.eos_token_id


def test_batched_greedy_ids_equal_transformers_on_the_real_model(exact_engine):
    streams = run_together(exact_engine, [(m, GenerationParams(temperature=0, max_new_tokens=24)) for m in QUESTIONS])
    for messages, stream in zip(QUESTIONS, streams):
        expected = reference_ids(exact_engine, messages, 24)
        assert stream.token_ids == expected[: len(stream.token_ids)]


def test_end_of_turn_ends_the_reply_with_stop(exact_engine):
    done = exact_engine.complete(QUESTIONS[1], GenerationParams(temperature=0, max_new_tokens=200))
    assert done.stats.finish_reason == "stop"
    assert done.token_ids[-1] == exact_engine.tokenizer.eos_token_id
    assert "<|im_end|>" not in done.text


@pytest.mark.skipif(native.why_unavailable() is not None, reason=str(native.why_unavailable()))
def test_the_default_cpu_weights_hold_every_layer_of_the_gguf_exactly():
    engine = model_runtime.load(max_batch=1, max_seq_len=64)
    try:
        grouped = [m for m in engine.backend.net.modules() if isinstance(m, GroupedLinear)]
        # 30 layers x (qkv, output, gate-up, down) in Q4_1, and the tied embedding head in Q8_0.
        assert len(grouped) == 121 and all(m.exact for m in grouped)
        assert [m.bits for m in grouped].count(8) == 1 and isinstance(engine.backend.net.output, Q8_0Linear)
        # Packed once beside the converted GGUF; later starts read it.
        assert saved_packing(engine.facts.folder, "lossless").exists()
    finally:
        engine.close()


def test_prepare_saves_the_cpu_packing_ahead_of_the_first_start(exact_engine):
    if weight_format("auto") != "lossless":
        pytest.skip(f"no packing is saved without the C kernels: {native.why_unavailable()}")
    packing = saved_packing(exact_engine.facts.folder, "lossless")
    packing.unlink(missing_ok=True)
    assert prepare.main([]) == 0
    assert packing.exists()


@pytest.mark.parametrize("weights", ["auto", "float16"])
def test_compact_cpu_weights_keep_the_float_models_greedy_reply(exact_engine, weights):
    if weights == "float16" and not Float16Linear.available():
        pytest.skip("float16 weights need PyTorch's fbgemm (x86)")
    engine = model_runtime.load(quantization="auto" if weights == "auto" else "none", max_batch=2, max_seq_len=512)
    if weights == "float16":
        quantize_cpu(engine.backend.net, "float16")  # the fallback where the C kernels cannot be built
    try:
        for messages in QUESTIONS:
            done = engine.complete(messages, GenerationParams(temperature=0, max_new_tokens=32))
            expected = reference_ids(exact_engine, messages, 32)
            assert done.token_ids == expected[: len(done.token_ids)]
    finally:
        engine.close()
