"""A conversation's next turn prefills only what is new: the slot's cache keeps the turns before it."""

from __future__ import annotations

import pytest
import torch

import model_runtime
from model_runtime import GenerationParams
from tests.test_engine import run_together

GREEDY = GenerationParams(temperature=0, max_new_tokens=16)
PENALISED = GenerationParams(temperature=0.9, top_p=0.95, repetition_penalty=1.3, max_new_tokens=16, seed=11)
QUESTIONS = ["What is an image?", "And a container?", "How do ports fit in?"]


def load(model_dir, **kwargs):
    return model_runtime.load(str(model_dir), quantization="none", max_seq_len=512, **kwargs)


@pytest.fixture(scope="module")
def engines(tiny_model_dir):
    """(reusing, fresh): the same model with and without prefix reuse, two slots each."""
    reusing, fresh = load(tiny_model_dir, max_batch=2), load(tiny_model_dir, max_batch=2, reuse_prefixes=False)
    yield reusing, fresh
    reusing.close()
    fresh.close()


def chat(engine, questions, params, system="Be brief."):
    """Ask each question in turn, the replies kept in the history; each turn's completion."""
    history, done = [{"role": "system", "content": system}], []
    for question in questions:
        history.append({"role": "user", "content": question})
        done.append(engine.complete(history, params))
        history.append({"role": "assistant", "content": done[-1].text})
    return done


def kv(engine, slot: int, length: int) -> list[torch.Tensor]:
    return [c[slot, :, :length] for layer in engine.backend.net.layers
            for c in (layer.attention.k_cache, layer.attention.v_cache)]


@pytest.mark.parametrize("params", [GREEDY, PENALISED], ids=["greedy", "sampled with a repetition penalty"])
def test_each_turn_prefills_only_what_is_new_and_replies_the_same(engines, params):
    reusing, fresh = engines
    turns, expected = chat(reusing, QUESTIONS, params), chat(fresh, QUESTIONS, params)
    assert [t.token_ids for t in turns] == [t.token_ids for t in expected]
    assert all(t.stats.cached_prompt_tokens == 0 for t in expected)
    for before, turn in zip(turns, turns[1:]):
        # Everything up to the previous reply's start was in the slot already.
        assert turn.stats.cached_prompt_tokens >= before.stats.prompt_tokens
    assert reusing.info()["prefix_reuse"] and reusing.info()["reused_prompt_tokens"] > 0


def test_conversations_side_by_side_each_find_their_own_slot(engines):
    reusing, fresh = engines
    first = [[{"role": "user", "content": q}] for q in ("Tell me about Compose.", "Tell me about Kubernetes.")]
    replies = [s.token_ids for s in run_together(reusing, [(m, GREEDY) for m in first])]
    texts = [reusing.tokenizer.decode(ids, skip_special_tokens=True) for ids in replies]
    follow_ups = [m + [{"role": "assistant", "content": t}, {"role": "user", "content": "Why?"}]
                  for m, t in zip(first, texts)]
    again = run_together(reusing, [(m, GREEDY) for m in follow_ups])
    for stream, messages in zip(again, follow_ups):
        assert stream.stats.cached_prompt_tokens >= len(reusing.encode(messages[:1]))
        assert stream.token_ids == fresh.complete(messages, GREEDY).token_ids


def test_a_slot_another_conversation_took_is_prefilled_afresh_as_a_fresh_engine_would(tiny_model_dir):
    reusing, fresh = load(tiny_model_dir, max_batch=1), load(tiny_model_dir, max_batch=1, reuse_prefixes=False)
    try:
        ours = [{"role": "user", "content": "What is a volume?"}]
        reply = reusing.complete(ours, GREEDY).text
        reusing.complete([{"role": "user", "content": "Something else entirely, please."}], GREEDY)  # takes the slot
        follow_up = ours + [{"role": "assistant", "content": reply}, {"role": "user", "content": "Where is it kept?"}]
        done, expected = reusing.complete(follow_up, GREEDY), fresh.complete(follow_up, GREEDY)
        assert done.stats.cached_prompt_tokens < len(reusing.encode(ours)), "only the template's opening is shared"
        assert done.token_ids == expected.token_ids
        written = done.stats.prompt_tokens + done.stats.completion_tokens - 1
        for got, want in zip(kv(reusing, 0, written), kv(fresh, 0, written), strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    finally:
        reusing.close()
        fresh.close()


def test_a_failed_step_leaves_nothing_to_reuse(tiny_model_dir, monkeypatch):
    engine = load(tiny_model_dir, max_batch=1)
    try:
        messages = [{"role": "user", "content": "What does EXPOSE do?"}]
        engine.complete(messages, GREEDY)
        decode = engine.backend.decode

        def broken(*args, **kwargs):
            raise RuntimeError("an injected fault")

        monkeypatch.setattr(engine.backend, "decode", broken)
        assert engine.complete(messages, GREEDY).stats.finish_reason == "error"
        monkeypatch.setattr(engine.backend, "decode", decode)
        again = engine.complete(messages, GREEDY)
        assert again.stats.finish_reason == "length" and again.stats.cached_prompt_tokens == 0
    finally:
        engine.close()
