"""Turning a batch's logits into each request's next token, on the logits' device.

Every row of a step is chosen by the same few tensor operations, with no
trip to the host, so a CUDA graph can hold them. A row samples by inverting
its distribution's cumulative sum at one uniform draw from its request's own
torch.Generator, and no row's choice depends on another's: a seeded reply is
the same alone or batched wherever its logits are (on a CPU they are).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch


@dataclass
class GenerationParams:
    temperature: float = 0.7  # 0 means greedy
    top_p: float = 0.9  # 1.0 keeps every token
    top_k: int = 0  # 0 keeps every token
    max_new_tokens: int = 512
    # 1.0 is off; above 1 discourages the reply from repeating its own tokens. Unlike transformers' and
    # vLLM's, it does not count the prompt's: a grounded reply should use the words of its notes and its
    # question (docs/GROUNDING.md, Sampling).
    repetition_penalty: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None

    def validate(self) -> None:
        problems = []
        if not self.temperature >= 0:
            problems.append("temperature must be 0 or more")
        if not 0 < self.top_p <= 1:
            problems.append("top_p must be in (0, 1]")
        if self.top_k < 0:
            problems.append("top_k must be 0 (off) or more")
        if self.max_new_tokens < 1:
            problems.append("max_new_tokens must be at least 1")
        if not self.repetition_penalty > 0:
            problems.append("repetition_penalty must be above 0")
        if any(not isinstance(s, str) or not s for s in self.stop):
            problems.append("stop must be a list of non-empty strings")
        if problems:
            raise ValueError("; ".join(problems))


NEUTRAL = (0.0, 0.0, 1.0, 1.0, 0.0)  # Choices.settings of a greedy row without penalty
FIRST_CANDIDATES = 64  # on a CPU, the likeliest tokens sorted before trying more (see choose)


def make_generator(seed: int | None) -> torch.Generator:
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


class Choices(NamedTuple):
    """How each row of a batch picks its next token."""

    settings: torch.Tensor  # [5, rows] float32: temperature, top_k, top_p, penalty, uniform
    plain: bool  # every row takes its likeliest token, unpenalised: an argmax is enough
    penalised: bool = True  # False when no row has a repetition penalty: its passes are skipped

    @classmethod
    def draw(cls, requests: list[tuple[GenerationParams, torch.Generator]]) -> "Choices":
        """Settings for one step, on the host; each sampling row draws its uniform number now, greedy rows none."""
        columns = []
        for params, generator in requests:
            uniform = float(torch.rand((), generator=generator)) if params.temperature > 0 else 0.0
            columns.append((params.temperature, params.top_k, params.top_p, params.repetition_penalty, uniform))
        settings = torch.tensor(columns, dtype=torch.float32).T.contiguous()
        penalised = any(p.repetition_penalty != 1.0 for p, _ in requests)
        return cls(settings, plain=not penalised and all(p.temperature == 0 for p, _ in requests), penalised=penalised)


def choose(logits: torch.Tensor, choices: Choices, seen: torch.Tensor) -> torch.Tensor:
    """The next token id of every row of `logits` [rows, vocab]; `seen` [rows, vocab] marks the tokens
    each row's reply holds so far, for the repetition penalty.

    A GPU sorts the whole vocabulary, as a graph needs fixed shapes and the
    sort is cheap there. On a CPU that sort is most of a sampled step, and
    top-p seldom reaches past the likeliest few dozen tokens: take those
    first, and more only for rows whose choice they do not settle.
    """
    if choices.plain:
        return logits.argmax(-1)
    vocab = logits.shape[-1]
    candidates = vocab if logits.is_cuda else min(FIRST_CANDIDATES, vocab)
    seen = seen if choices.penalised else None
    settings = choices.settings.to(logits.device)  # already there inside a CUDA graph
    ids, settled = pick(logits, settings, seen, candidates)
    while candidates < vocab and not bool(settled.all()):
        # A row keeps the answer of the narrowest try that settles it, whatever its neighbours need.
        candidates = min(candidates * 8, vocab)
        wider, settled_wider = pick(logits, settings, seen, candidates)
        ids = torch.where(settled, ids, wider)
        settled |= settled_wider
    return ids


def choose_and_mark(logits: torch.Tensor, choices: Choices, seen: torch.Tensor, slots: list[int]) -> list[int]:
    """choose() for rows of `logits` [rows, vocab] that decode `slots`, each choice marked as seen
    in `seen` [slots, vocab], the engine's memory for the repetition penalty; one transfer to the host."""
    rows = torch.tensor(slots, device=logits.device)
    ids = choose(logits, choices, seen[rows])
    seen[rows, ids] = True
    return ids.tolist()


def pick(logits, settings, seen, candidates: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's token from its `candidates` likeliest, and whether those were enough to settle it.

    `seen` is None where no row has a repetition penalty.
    """
    order, kept, settled, likeliest = filtered(logits, settings, seen, candidates)
    cumulative = kept.cumsum(-1)
    at = (cumulative < settings[4, :, None] * cumulative[:, -1:]).sum(-1, keepdim=True)
    at = torch.minimum(at, (kept > 0).sum(-1, keepdim=True) - 1).clamp(min=0)
    sampled = order.gather(-1, at)[:, 0]
    return torch.where(settings[0] == 0, likeliest, sampled), settled


def probabilities(logits: torch.Tensor, choices: Choices, seen: torch.Tensor) -> torch.Tensor:
    """What choose() samples each (sampling) row of `logits` [rows, vocab] from: [rows, vocab], rows summing to 1."""
    vocab = logits.shape[-1]
    seen = seen if choices.penalised else None
    settings = choices.settings.to(logits.device)
    candidates = vocab if logits.is_cuda else min(FIRST_CANDIDATES, vocab)
    order, kept, settled, _ = filtered(logits, settings, seen, candidates)
    while candidates < vocab and not bool(settled.all()):
        candidates = min(candidates * 8, vocab)
        order, kept, settled, _ = filtered(logits, settings, seen, candidates)
    probs = torch.zeros_like(logits).scatter_(-1, order, kept)
    return probs / probs.sum(-1, keepdim=True)


def keep_or_replace(probs: torch.Tensor, drafted: int, accept: float, resample: float) -> int:
    """Speculative sampling's rule for a drafted token that was sure to be drafted (prompt lookup):
    keep it with its probability under `probs` [vocab], else draw from the other tokens, renormalised.
    The token that comes out is distributed as `probs`, whatever was drafted. accept and resample
    are uniform draws in [0, 1)."""
    if accept < float(probs[drafted]):
        return drafted
    rest = probs.clone()
    rest[drafted] = 0
    cumulative = rest.cumsum(0)
    if not float(cumulative[-1]) > 0:  # all of the mass was on the drafted token, but for rounding
        return drafted
    return int((cumulative <= resample * cumulative[-1]).sum())


def filtered(logits, settings, seen, candidates: int):
    """(order, kept, settled, likeliest): each row's `candidates` likeliest token ids, their
    probabilities after the filters (not renormalised; zero where dropped), whether those
    candidates were enough to settle the row, and the likeliest token after the penalty.

    The filters are transformers' (repetition penalty, temperature, top-k,
    then top-p), so the same settings mean the same here as in generate();
    only ties at the k-th place may be broken differently.
    """
    temperature, top_k, top_p, penalty, _ = settings[:, :, None]
    vocab = logits.shape[-1]
    if seen is not None:
        penalised = torch.where(logits < 0, logits * penalty, logits / penalty)
        logits = torch.where(seen, penalised, logits)
    greedy = temperature[:, 0] == 0
    scaled = logits / torch.where(greedy[:, None], 1.0, temperature)
    if candidates < vocab:
        values, order = scaled.topk(candidates)
    else:
        values, order = scaled.sort(descending=True)
    rank = torch.arange(candidates, device=logits.device)
    k = torch.where(top_k > 0, top_k.clamp(max=vocab), vocab)
    in_top_k = rank < k
    # Probabilities after top-k: over the first k where they are all candidates; over the
    # whole row where there is no top-k (a top-k wider than the candidates leaves a row unsettled).
    log_total = values.masked_fill(~in_top_k, -torch.inf).logsumexp(-1, keepdim=True)
    if candidates < vocab:
        log_total = torch.where(k <= candidates, log_total, scaled.logsumexp(-1, keepdim=True))
    probs = (values - log_total).exp() * in_top_k
    # Top-p keeps a token while the tokens above it hold less than top_p: a prefix of the order.
    above = probs.cumsum(-1) - probs
    kept = probs * (in_top_k & ((above < top_p) | (top_p >= 1)))
    # Enough candidates: the top-k fits in them, or, without a top-k, they hold the top-p share.
    without_top_k = k[:, 0] >= vocab
    settled = greedy | (k[:, 0] <= candidates) | (without_top_k & (top_p[:, 0] < 1) & (probs.sum(-1) >= top_p[:, 0]))
    return order, kept, settled, logits.argmax(-1)
