"""The token choice: each setting's distribution is transformers', and rows do not sway each other."""

from __future__ import annotations

import pytest
import torch
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from model_runtime.sampling import FIRST_CANDIDATES, Choices, GenerationParams, choose, keep_or_replace, probabilities

VOCAB = 500  # more than FIRST_CANDIDATES, so a flat row needs a second, wider try
SEEN = [3, 17, 42, 99]  # the prompt and reply so far, for the repetition penalty


def logits_of(spread: float, seed: int = 0) -> torch.Tensor:
    logits = torch.randn(VOCAB, generator=torch.Generator().manual_seed(seed)) * spread
    logits[SEEN] = torch.tensor([1.5, 1.0, -0.5, -1.0]) * spread  # the penalty's two cases both matter
    return logits


def transformers_probs(logits: torch.Tensor, params: GenerationParams) -> torch.Tensor:
    """What generate() samples from with these settings, in its order of processors."""
    scores = logits[None].clone()
    if params.repetition_penalty != 1.0:
        scores = RepetitionPenaltyLogitsProcessor(params.repetition_penalty)(torch.tensor([SEEN]), scores)
    scores = TemperatureLogitsWarper(params.temperature)(None, scores)
    if params.top_k:
        scores = TopKLogitsWarper(params.top_k)(None, scores)
    if params.top_p < 1:
        scores = TopPLogitsWarper(params.top_p)(None, scores)
    return scores.softmax(-1)[0]


def settings(params: GenerationParams, uniform: torch.Tensor) -> Choices:
    """One row per uniform draw, all with `params`."""
    fixed = torch.tensor([params.temperature, params.top_k, params.top_p, params.repetition_penalty])
    table = torch.cat([fixed[:, None].expand(-1, len(uniform)), uniform[None]])
    return Choices(table, plain=False, penalised=params.repetition_penalty != 1.0)


def seen_rows(rows: int) -> torch.Tensor:
    seen = torch.zeros(rows, VOCAB, dtype=torch.bool)
    seen[:, SEEN] = True
    return seen


@pytest.mark.parametrize(
    "spread, params",
    [
        (3.0, GenerationParams(temperature=1.0, top_p=1.0)),  # the whole distribution
        (3.0, GenerationParams(temperature=0.7, top_p=0.9)),  # the chat tab's defaults
        (0.5, GenerationParams(temperature=0.7, top_p=0.9)),  # flat: top-p reaches past the first candidates
        (3.0, GenerationParams(temperature=1.3, top_k=50, top_p=0.8)),
        (1.0, GenerationParams(temperature=1.0, top_k=FIRST_CANDIDATES + 36, top_p=1.0)),
        (1.0, GenerationParams(temperature=1.0, top_p=1.0, repetition_penalty=1.3)),
        (3.0, GenerationParams(temperature=0.5, top_p=0.95, repetition_penalty=1.3)),
    ],
)
def test_each_setting_samples_what_transformers_would(spread, params):
    samples_like_transformers(logits_of(spread), params)


def test_top_p_after_a_top_k_wider_than_the_first_candidates():
    # The first 64 tokens hold 80% of the whole row and the next 36 5%: top-p 0.8 of the top 100
    # keeps fewer than 64 tokens, and top-p 0.8 of the whole row would keep all 64.
    levels = torch.cat([torch.full((FIRST_CANDIDATES,), 3.51), torch.full((36,), 1.31), torch.zeros(VOCAB - 100)])
    logits = levels + 0.01 * torch.randn(VOCAB, generator=torch.Generator().manual_seed(0))
    samples_like_transformers(logits, GenerationParams(temperature=1.0, top_k=100, top_p=0.8))


def samples_like_transformers(logits: torch.Tensor, params: GenerationParams) -> None:
    want = transformers_probs(logits, params)
    # Evenly spaced draws: the share of draws that picks a token is its probability, to within one draw.
    draws = 4000
    uniform = (torch.arange(draws) + 0.5) / draws
    ids = choose(logits.expand(draws, -1), settings(params, uniform), seen_rows(draws))
    share = torch.bincount(ids, minlength=VOCAB) / draws
    assert (share[want == 0] == 0).all(), "a token the filters drop was picked"
    torch.testing.assert_close(share, want, rtol=0, atol=1.01 / draws)


def test_greedy_rows_take_the_likeliest_token_after_the_penalty():
    logits = torch.stack([logits_of(3.0, seed) for seed in range(4)])
    logits[:, SEEN[0]] = logits.max(-1).values + 0.1  # a seen token that leads by a little
    penalised = RepetitionPenaltyLogitsProcessor(1.5)(torch.tensor([SEEN] * 4), logits.clone())
    plain = Choices(torch.tensor([[0.0, 0, 1, 1, 0]] * 4).T, plain=True)
    penalty = Choices(torch.tensor([[0.0, 0, 1, 1.5, 0]] * 4).T, plain=False)
    assert choose(logits, plain, seen_rows(4)).tolist() == [SEEN[0]] * 4
    assert choose(logits, penalty, seen_rows(4)).tolist() == penalised.argmax(-1).tolist()


def test_a_rows_choice_does_not_depend_on_its_neighbours():
    rows = [
        (logits_of(3.0, 1), GenerationParams(temperature=0.7, top_p=0.9)),
        (logits_of(0.5, 2), GenerationParams(temperature=1.0, top_p=0.95)),  # makes the batch try wider
        (logits_of(3.0, 3), GenerationParams(temperature=0, repetition_penalty=1.2)),
        (logits_of(1.0, 4), GenerationParams(temperature=1.2, top_k=20, top_p=1.0)),
    ]
    generators = [torch.Generator().manual_seed(i) for i in range(len(rows))]
    for _ in range(20):
        choices = Choices.draw([(params, g) for (_, params), g in zip(rows, generators)])
        together = choose(torch.stack([logits for logits, _ in rows]), choices, seen_rows(len(rows)))
        for i, (logits, _) in enumerate(rows):
            alone = Choices(choices.settings[:, i : i + 1], plain=False)
            assert choose(logits[None], alone, seen_rows(1)).item() == together[i].item()


def test_greedy_rows_draw_no_random_numbers_and_flags_say_what_a_step_needs():
    greedy, sampled = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    choices = Choices.draw([(GenerationParams(temperature=0), greedy), (GenerationParams(), sampled)])
    assert choices.settings[4, 0] == 0 and 0 <= choices.settings[4, 1] < 1
    assert torch.equal(greedy.get_state(), torch.Generator().manual_seed(5).get_state())
    assert not torch.equal(sampled.get_state(), greedy.get_state())
    assert not choices.plain and not choices.penalised
    assert Choices.draw([(GenerationParams(temperature=0), greedy)]).plain
    penalty = Choices.draw([(GenerationParams(temperature=0, repetition_penalty=1.1), greedy)])
    assert penalty.penalised and not penalty.plain


@pytest.mark.parametrize("params", [GenerationParams(temperature=0.3, top_p=0.9, repetition_penalty=1.15),  # the chat's
                                    GenerationParams(temperature=1.0, top_p=1.0)])
def test_probabilities_are_what_choose_samples_from(params):
    logits = logits_of(3.0)
    choices = settings(params, torch.tensor([0.5]))
    torch.testing.assert_close(probabilities(logits[None], choices, seen_rows(1))[0], transformers_probs(logits, params))


@pytest.mark.parametrize("drafted", ["likeliest", "second", "dropped by top-p"])
def test_a_drafted_token_kept_by_the_rule_leaves_the_distribution_as_it_was(drafted):
    params = GenerationParams(temperature=0.7, top_p=0.9)
    want = transformers_probs(logits_of(1.0), params)
    ranked = want.argsort(descending=True).tolist()
    token = {"likeliest": ranked[0], "second": ranked[1], "dropped by top-p": ranked[-1]}[drafted]
    # Evenly spaced draws for both uniforms: each outcome's share is its probability, to within a draw or two.
    steps = 120
    grid = ((torch.arange(steps) + 0.5) / steps).tolist()
    outcomes = [keep_or_replace(want, token, accept, resample) for accept in grid for resample in grid]
    share = torch.bincount(torch.tensor(outcomes), minlength=VOCAB) / len(outcomes)
    assert (share[want == 0] == 0).all()
    torch.testing.assert_close(share, want, rtol=0, atol=2.01 / steps)
