"""The engine on a tiny random model: exactness, batching, stopping, cancelling, sampling."""

from __future__ import annotations

import threading
from functools import cache

import pytest
import torch
from transformers import LogitsProcessorList, RepetitionPenaltyLogitsProcessor

import model_runtime
from model_runtime import GenerationParams
from model_runtime.cpu import weight_format
from model_runtime.quantize import CPU_WEIGHTS
from model_runtime.loading import load_pretrained
from tests.helpers import wait_for

GREEDY = GenerationParams(temperature=0, max_new_tokens=24)
PROMPTS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is a container image, really?"}],
    [{"role": "user", "content": "Map port 7860 please, and explain what Compose does for a whole kitchen."}],
]


@cache
def transformers_model(folder: str):
    """The checkpoint an engine was loaded from, as transformers runs it (the engine keeps no copy)."""
    return load_pretrained(folder)[0]


def reference_ids(engine, messages, n):
    """transformers' own greedy decoding of the same prompt and weights."""
    ids = torch.tensor([engine.encode(messages)])
    out = transformers_model(engine.facts.folder).generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False)
    return out[0, ids.shape[1] :].tolist()


def run_together(engine, requests):
    """Start every (messages, params) at once; return their streams, read to the end."""
    streams = [engine.stream(m, p) for m, p in requests]
    results = [None] * len(streams)

    def drain(i):
        results[i] = "".join(e.text for e in streams[i])

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(len(streams))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(r is not None for r in results), "a stream did not finish"
    return streams


def test_greedy_matches_transformers_alone(tiny_engine):
    for messages in PROMPTS:
        completion = tiny_engine.complete(messages, GREEDY)
        assert completion.token_ids == reference_ids(tiny_engine, messages, 24)
        assert completion.stats.completion_tokens == 24
        assert completion.stats.finish_reason == "length"


@pytest.mark.parametrize("architecture", ["llama with biases", "qwen2"])
def test_greedy_matches_transformers_with_every_bias_carried_over(tiny_model_of, architecture):
    engine = model_runtime.load(str(tiny_model_of(architecture)), quantization="none", max_batch=2, max_seq_len=256)
    try:
        for messages in PROMPTS:
            assert engine.complete(messages, GREEDY).token_ids == reference_ids(engine, messages, 24)
    finally:
        engine.close()


def test_greedy_matches_transformers_batched(tiny_engine):
    streams = run_together(tiny_engine, [(m, GREEDY) for m in PROMPTS])
    for messages, stream in zip(PROMPTS, streams):
        assert stream.token_ids == reference_ids(tiny_engine, messages, 24)
        assert stream.stats.prompt_tokens == len(tiny_engine.encode(messages))


def test_requests_join_and_leave_mid_decode(tiny_engine):
    long_params = GenerationParams(temperature=0, max_new_tokens=120)
    alone = tiny_engine.complete(PROMPTS[2], long_params).token_ids
    long_stream = tiny_engine.stream(PROMPTS[2], long_params)
    for _ in range(5):
        next(long_stream)
    # A short request joins while the long one decodes, and leaves before it ends.
    short = tiny_engine.complete(PROMPTS[0], GenerationParams(temperature=0, max_new_tokens=8))
    assert short.stats.completion_tokens == 8
    assert long_stream.stats is None, "the long request should still be decoding"
    list(long_stream)
    assert long_stream.token_ids == alone
    assert short.token_ids == reference_ids(tiny_engine, PROMPTS[0], 8)


def test_stop_string_ends_reply_without_it(tiny_engine):
    full = tiny_engine.complete(PROMPTS[1], GREEDY).text
    stop = next(ch for ch in full[len(full) // 2 :] if not ch.isspace())
    cut = tiny_engine.complete(PROMPTS[1], GenerationParams(temperature=0, max_new_tokens=24, stop=[stop]))
    assert cut.text == full[: full.index(stop)]
    assert cut.stats.finish_reason == "stop"


def test_max_new_tokens_ends_with_length(tiny_engine):
    done = tiny_engine.complete(PROMPTS[0], GenerationParams(temperature=0, max_new_tokens=5))
    assert (done.stats.finish_reason, done.stats.completion_tokens) == ("length", 5)
    assert done.stats.time_to_first_token_s > 0 and done.stats.decode_tokens_per_s > 0


def test_closing_a_stream_cancels_it_and_frees_its_slot(tiny_engine):
    other = tiny_engine.stream(PROMPTS[1], GenerationParams(temperature=0, max_new_tokens=60))
    doomed = tiny_engine.stream(PROMPTS[0], GenerationParams(temperature=0, max_new_tokens=200))
    cancelled = tiny_engine.info()["finished_requests"].get("cancelled", 0)
    next(doomed)
    doomed.close()
    wait_for(lambda: tiny_engine.info()["finished_requests"].get("cancelled", 0) == cancelled + 1)
    "".join(e.text for e in other)
    assert other.stats.finish_reason == "length" and other.stats.completion_tokens == 60
    assert tiny_engine.info()["active_requests"] == 0


def test_engine_cancel_by_id(tiny_engine):
    stream = tiny_engine.stream(PROMPTS[0], GenerationParams(temperature=0, max_new_tokens=200))
    next(stream)
    tiny_engine.cancel(stream.id)
    events = list(stream)
    assert stream.stats.finish_reason == "cancelled"
    assert events[-1].stats is stream.stats


def test_the_repetition_penalty_counts_the_reply_not_the_prompt(tiny_engine):
    """Greedy with a penalty is transformers' greedy with its penalty over the reply's tokens alone,
    which is not transformers' own penalty (that one counts the prompt too) on these prompts."""
    penalised = GenerationParams(temperature=0, repetition_penalty=1.3, max_new_tokens=24)
    model = transformers_model(tiny_engine.facts.folder)
    differs = False
    for messages in PROMPTS:
        ids = torch.tensor([tiny_engine.encode(messages)])

        def reply_only(input_ids, scores, start=ids.shape[1]):
            return RepetitionPenaltyLogitsProcessor(1.3)(input_ids[:, start:], scores)

        def greedy(**kwargs):
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=24, do_sample=False, **kwargs)
            return out[0, ids.shape[1]:].tolist()

        expected = greedy(logits_processor=LogitsProcessorList([reply_only]))
        assert tiny_engine.complete(messages, penalised).token_ids == expected
        differs |= expected != greedy(repetition_penalty=1.3)
    assert differs, "the prompts do not tell the two penalties apart"


def test_seeded_sampling_is_reproducible_alone_and_batched(tiny_engine):
    params = GenerationParams(temperature=1.0, top_p=0.9, top_k=50, repetition_penalty=1.3, max_new_tokens=20, seed=7)
    alone = tiny_engine.complete(PROMPTS[1], params).token_ids
    assert tiny_engine.complete(PROMPTS[1], params).token_ids == alone
    batched = run_together(tiny_engine, [(PROMPTS[0], GREEDY), (PROMPTS[1], params), (PROMPTS[2], GREEDY)])
    assert batched[1].token_ids == alone
    other_seed = GenerationParams(**{**params.__dict__, "seed": 8})
    assert tiny_engine.complete(PROMPTS[1], other_seed).token_ids != alone


@pytest.mark.parametrize(
    "messages, message",
    [
        ([], "non-empty list"),
        ([{"role": "wizard", "content": "hi"}], "role"),
        ([{"role": "user", "content": None}], "content"),
        ([{"role": "user", "content": "word " * 400}], "context holds 256"),
    ],
)
def test_bad_requests_are_refused_clearly(tiny_engine, messages, message):
    with pytest.raises(ValueError, match=message):
        tiny_engine.stream(messages)
    assert tiny_engine.complete(PROMPTS[0], GenerationParams(temperature=0, max_new_tokens=3)).text


@pytest.mark.parametrize("bad", [{"temperature": -1}, {"top_p": 0}, {"max_new_tokens": 0}, {"stop": [""]}])
def test_bad_params_are_refused(tiny_engine, bad):
    with pytest.raises(ValueError):
        tiny_engine.stream(PROMPTS[0], GenerationParams(**bad))


def test_reply_stops_at_the_end_of_the_context(tiny_model_dir):
    import model_runtime

    engine = model_runtime.load(str(tiny_model_dir), quantization="none", max_batch=1, max_seq_len=40)
    try:
        done = engine.complete(PROMPTS[0], GenerationParams(temperature=0, max_new_tokens=500))
        assert done.stats.finish_reason == "length"
        assert done.stats.prompt_tokens + done.stats.completion_tokens == 40
    finally:
        engine.close()


@pytest.mark.parametrize("quantization", ["auto", "4bit", "8bit"])
def test_quantized_weights_stay_close_to_float(tiny_model_dir, quantization):
    import model_runtime

    engine = model_runtime.load(str(tiny_model_dir), quantization=quantization, max_batch=1, max_seq_len=64)
    # Its own float engine: running the network directly writes a slot's cache behind the engine's back.
    exact_engine = model_runtime.load(str(tiny_model_dir), quantization="none", max_batch=1, max_seq_len=64)
    try:
        info = engine.info()
        assert info["quantization"].startswith(CPU_WEIGHTS[weight_format(quantization)].words) and info["backend"].startswith("cpu-")
        tokens = torch.tensor([engine.encode(PROMPTS[1])])
        n = tokens.shape[1]
        with torch.inference_mode():
            args = (tokens, torch.arange(n)[None], torch.tensor([0]), n)
            quantized = engine.backend.net(*args, last_only=True)[0, -1]
            exact = exact_engine.backend.net(*args, last_only=True)[0, -1]
        assert torch.nn.functional.cosine_similarity(quantized, exact, dim=0) > 0.99
    finally:
        engine.close()
        exact_engine.close()


def test_counting_a_conversation_and_then_sending_it_templates_it_once(tiny_engine, monkeypatch):
    calls = []
    template = tiny_engine.tokenizer.apply_chat_template
    monkeypatch.setattr(tiny_engine.tokenizer, "apply_chat_template", lambda *a, **k: calls.append(1) or template(*a, **k))
    messages = [{"role": "user", "content": "A question asked only by this test, once"}]
    tokens = tiny_engine.count_tokens(messages)
    assert tiny_engine.complete(messages, GREEDY).stats.prompt_tokens == tokens
    assert len(calls) == 1


def test_info_describes_the_engine(tiny_engine):
    info = tiny_engine.info()
    for key in ("model", "parameters", "dtype", "quantization", "device", "backend", "context_length", "max_batch"):
        assert key in info
    assert info["parameters"] > 0 and info["max_batch"] == 4 and info["context_length"] == 256
    assert info["why_not_faster"]


def test_without_a_background_thread_the_caller_decodes_the_same_tokens(inline_engine, tiny_engine):
    assert inline_engine.info()["scheduler"].startswith("in the caller")
    stream = inline_engine.stream(PROMPTS[1], GREEDY)
    assert inline_engine.info()["active_requests"] == 0, "nothing decodes until the caller iterates"
    "".join(e.text for e in stream)
    assert stream.token_ids == reference_ids(tiny_engine, PROMPTS[1], 24)
    params = GenerationParams(temperature=1.0, top_p=0.9, max_new_tokens=20, seed=7)
    assert inline_engine.complete(PROMPTS[1], params).token_ids == tiny_engine.complete(PROMPTS[1], params).token_ids


def test_without_a_background_thread_more_callers_than_slots_all_finish(inline_engine, tiny_engine):
    # max_batch is 2: the third caller waits for a slot, then decodes.
    streams = run_together(inline_engine, [(m, GREEDY) for m in PROMPTS])
    for messages, stream in zip(PROMPTS, streams):
        assert stream.token_ids == reference_ids(tiny_engine, messages, 24)
    assert inline_engine.info()["active_requests"] == 0


def test_without_a_background_thread_closing_frees_the_slot_at_once(inline_engine):
    cancelled = inline_engine.info()["finished_requests"].get("cancelled", 0)
    stream = inline_engine.stream(PROMPTS[0], GenerationParams(temperature=0, max_new_tokens=200))
    next(stream)
    assert inline_engine.info()["active_requests"] == 1
    stream.close()
    info = inline_engine.info()
    assert info["active_requests"] == 0 and info["finished_requests"]["cancelled"] == cancelled + 1


def test_without_a_background_thread_a_caller_waiting_for_a_slot_runs_the_others_and_can_be_cancelled(inline_engine):
    params = GenerationParams(temperature=0, max_new_tokens=900)
    holders = [inline_engine.stream(PROMPTS[0], params) for _ in range(2)]
    for holder in holders:
        next(holder)  # both slots are taken now
    waiting = inline_engine.stream(PROMPTS[1], params)
    before = [len(holder.token_ids) for holder in holders]
    reader = threading.Thread(target=lambda: list(waiting))
    reader.start()
    # Its reader runs the same steps as everyone: the holders decode though nobody reads them.
    wait_for(lambda: all(len(h.token_ids) > n + 10 for h, n in zip(holders, before)))
    assert reader.is_alive() and inline_engine.info()["waiting_requests"] == 1, "the third caller waits for a slot"
    waiting.close()
    reader.join(timeout=10)
    assert not reader.is_alive() and waiting.stats.finish_reason == "cancelled"
    for holder in holders:
        holder.close()
    assert inline_engine.info()["active_requests"] == 0


def test_prompts_prefilled_in_chunks_give_the_same_tokens(tiny_engine, monkeypatch):
    monkeypatch.setattr(tiny_engine, "prefill_chunk", 4)
    assert all(len(tiny_engine.encode(m)) > 8 for m in PROMPTS)
    for messages, stream in zip(PROMPTS, run_together(tiny_engine, [(m, GREEDY) for m in PROMPTS])):
        assert stream.token_ids == reference_ids(tiny_engine, messages, 24)


def test_others_keep_decoding_while_a_long_prompt_is_prefilled(tiny_engine, monkeypatch):
    monkeypatch.setattr(tiny_engine, "prefill_chunk", 4)
    monkeypatch.setattr(tiny_engine, "reuse_prefixes", False)  # the whole prompt, chunk by chunk
    chunks = -(-len(tiny_engine.encode(PROMPTS[2])) // 4)
    running = tiny_engine.stream(PROMPTS[0], GenerationParams(temperature=0, max_new_tokens=200))
    next(running)
    before = len(running.token_ids)
    joining = tiny_engine.stream(PROMPTS[2], GREEDY)
    next(joining)
    # One chunk of the new prompt a step, and a token for the running reply each step.
    assert len(running.token_ids) - before >= chunks - 1
    running.close()
    list(joining)
    assert joining.token_ids == reference_ids(tiny_engine, PROMPTS[2], 24)


def test_the_cpu_kv_cache_starts_as_zeros_in_one_block_per_layer_pair():
    from model_runtime.model import zeros_on_demand

    caches = zeros_on_demand((3, 2, 4, 2, 16, 8), torch.float32, torch.device("cpu"))
    assert caches.shape == (3, 2, 4, 2, 16, 8) and not caches.any()
    k, v = caches[1]
    assert k.is_contiguous() and v.is_contiguous(), "the C kernels take each cache as one block"
    k[2, 1, 5] = 1.0
    assert caches.sum() == 8 and not v.any(), "each layer's keys and values are their own memory"
