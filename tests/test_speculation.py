"""Prompt-lookup drafts: a greedy reply is token for token the one decoded without them."""

from __future__ import annotations

import pytest
import torch

import model_runtime
from model_runtime import GenerationParams, native
from model_runtime.speculate import LONGEST, ROW_COST, Drafter, plan, step_cost
from tests.test_engine import run_together
from tests.test_prefix_reuse import chat, kv

GREEDY = GenerationParams(temperature=0, max_new_tokens=40)
# The penalty counts the reply's own tokens, so a stronger one keeps the random model from the repeats drafts guess.
PENALISED = GenerationParams(temperature=0, repetition_penalty=1.1, max_new_tokens=80)
SAMPLED = GenerationParams(temperature=0.8, max_new_tokens=20, seed=5)
# A random model soon repeats itself, which is what prompt lookup guesses from.
PROMPTS = [[{"role": "user", "content": text}] for text in (
    "Say it again: the image is a recipe, the container is the dish, the image is a recipe.",
    "Ports: 8080 on the host, 80 in the container; 8080 on the host, 80 in the container.",
    "Compose starts every service of the file.",
)]


def load(model_dir, speculate: bool, **kwargs):
    # "4bit": the C kernels, which check drafts; the reference path (model.py) does not.
    return model_runtime.load(str(model_dir), quantization="4bit", max_seq_len=512, speculate=speculate, **kwargs)


@pytest.fixture(scope="module")
def engines(tiny_model_dir):
    """(drafting, plain): the same weights with and without drafts, three slots each."""
    drafting, plain = load(tiny_model_dir, True, max_batch=3), load(tiny_model_dir, False, max_batch=3)
    yield drafting, plain
    drafting.close()
    plain.close()


def test_a_draft_is_what_followed_the_latest_tokens_last_time():
    drafter = Drafter([5, 6, 7, 8, 9, 1, 2])
    assert drafter.draft([5, 6], room=3) == [7, 8, 9]  # "5 6" was followed by "7 8 9"
    assert drafter.draft([5, 6, 7], room=LONGEST) == [8, 9, 1, 2, 5, 6, 7]  # "5 6 7", latest first
    assert Drafter([1, 2, 3]).draft([4], room=4) == []  # "3 4" never came before


def test_the_odds_of_a_guess_follow_its_latest_drafts():
    drafter = Drafter([])
    hopeful = drafter.odds
    drafter.checked(drafted=4, accepted=4)
    assert drafter.odds > hopeful
    for _ in range(3):
        drafter.checked(drafted=4, accepted=0)
    assert drafter.odds < hopeful / 2
    assert plan(8, [([1, 2, 3], drafter.odds)] + [([], 0.0)] * 7, budget=16)[0] == []  # not beside seven others


def test_a_full_step_checks_only_guesses_worth_their_rows():
    likely, unlikely = list(range(8)), list(range(10, 18))
    alone = plan(1, [(likely, 0.9)], budget=16)
    assert 4 <= len(alone[0]) <= 8 and alone[0] == likely[:len(alone[0])]
    assert plan(1, [(unlikely, 0.1)], budget=16) == [[]]  # a guess kept one time in ten does not pay
    crowded = plan(8, [(likely, 0.9)] + [(unlikely, 0.3)] * 7, budget=16)
    assert 0 < len(crowded[0]) < len(alone[0]) and not any(crowded[1:])  # fewer rows pay beside seven others
    assert sum(map(len, plan(2, [(likely, 0.99), (likely, 0.99)], budget=5))) <= 5
    assert step_cost(8) == pytest.approx(1 + 7 * ROW_COST)


@pytest.mark.parametrize("params", [GREEDY, PENALISED], ids=["greedy", "greedy with a repetition penalty"])
def test_greedy_replies_are_the_same_with_drafts_alone_and_batched(engines, params, monkeypatch):
    drafting, plain = engines
    rows, check = [], drafting.backend.check

    def recorded(tokens, positions, slots):
        rows.append(len(slots))
        return check(tokens, positions, slots)

    monkeypatch.setattr(drafting.backend, "check", recorded)
    monkeypatch.setattr(native, "MATMUL_ROWS", 6)  # so that three requests' steps take both kernels
    for messages in PROMPTS:
        assert drafting.complete(messages, params).token_ids == plain.complete(messages, params).token_ids
    together = run_together(drafting, [(m, params) for m in PROMPTS])
    assert [s.token_ids for s in together] == [plain.complete(m, params).token_ids for m in PROMPTS]
    drafted, accepted = (sum(getattr(s.stats, n) for s in together) for n in ("drafted_tokens", "accepted_tokens"))
    assert 0 < accepted < drafted, "drafts both kept and turned down"
    # Steps of either kernel: few rows take the matrix-vector one, many the matrix-matrix one (kernels.c).
    assert min(rows) < native.MATMUL_ROWS <= max(rows)


def test_sampled_replies_draft_too_and_leave_greedy_ones_beside_them_alone(engines):
    drafting, plain = engines
    streams = run_together(drafting, [(PROMPTS[0], GREEDY), (PROMPTS[1], SAMPLED), (PROMPTS[2], GREEDY)])
    assert streams[1].stats.drafted_tokens > 0  # kept by speculative sampling's rule (tests/test_sampling.py)
    assert [streams[0].token_ids, streams[2].token_ids] == [plain.complete(m, GREEDY).token_ids for m in PROMPTS[::2]]
    seeded = [drafting.complete(PROMPTS[1], SAMPLED).token_ids for _ in range(2)]
    assert seeded[0] == seeded[1]  # a seed still gives the same reply


def test_rejected_drafts_leave_the_cache_as_a_plain_engine_leaves_it(tiny_model_dir):
    drafting, plain = load(tiny_model_dir, True, max_batch=1), load(tiny_model_dir, False, max_batch=1)
    try:
        questions = ["Say it again: the image is a recipe, the image is a recipe.", "And a container?"]
        turns, expected = chat(drafting, questions, GREEDY), chat(plain, questions, GREEDY)
        assert [t.token_ids for t in turns] == [t.token_ids for t in expected]
        assert turns[1].stats.cached_prompt_tokens > 0  # the second turn read the first's keys and values
        assert sum(t.stats.drafted_tokens - t.stats.accepted_tokens for t in turns) > 0  # some drafts were wrong
        written = len(drafting._cached[0])
        assert drafting._cached[0] == plain._cached[0]
        for got, want in zip(kv(drafting, 0, written), kv(plain, 0, written)):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
    finally:
        drafting.close()
        plain.close()


def test_drafts_never_take_a_row_from_another_request(engines, monkeypatch):
    drafting, plain = engines
    steps, check = [], drafting.backend.check

    def recorded(tokens, positions, slots):
        steps.append(list(slots))
        return check(tokens, positions, slots)

    monkeypatch.setattr(drafting.backend, "check", recorded)
    monkeypatch.setattr(drafting, "draft_rows", 2)
    together = run_together(drafting, [(m, GREEDY) for m in PROMPTS])
    assert [s.token_ids for s in together] == [plain.complete(m, GREEDY).token_ids for m in PROMPTS]
    assert steps, "no step checked a draft"
    for slots in steps:
        assert len(slots) <= len(set(slots)) + 2  # one row per request, and at most two drafted rows


def test_info_says_where_drafts_are_off(engines, tiny_engine):
    assert engines[0].info()["speculation"].startswith("prompt lookup")
    assert engines[1].info()["speculation"] == "off: turned off (speculate=False)"
    assert "C kernels" in tiny_engine.info()["speculation"]  # the reference path: no drafts


def test_a_cancelled_request_takes_its_drafts_with_it(engines):
    drafting, plain = engines
    cancelled = drafting.info()["finished_requests"].get("cancelled", 0)
    long = GenerationParams(temperature=0, max_new_tokens=200)
    stopped, going = drafting.stream(PROMPTS[0], long), drafting.stream(PROMPTS[1], GREEDY)
    next(stopped)  # under way
    stopped.close()
    list(going)  # the other reply, read to its end, steps on past the cancel
    assert going.token_ids == plain.complete(PROMPTS[1], GREEDY).token_ids
    assert len(stopped.token_ids) < long.max_new_tokens
    assert drafting.info()["finished_requests"]["cancelled"] == cancelled + 1
    assert drafting.info()["active_requests"] == 0
