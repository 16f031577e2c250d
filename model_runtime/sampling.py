"""Turning one request's logits into its next token.

Each request samples from its own torch.Generator, so a seeded reply is the
same whether it decodes alone or batched with others.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class GenerationParams:
    temperature: float = 0.7  # 0 means greedy
    top_p: float = 0.9  # 1.0 keeps every token
    top_k: int = 0  # 0 keeps every token
    max_new_tokens: int = 512
    repetition_penalty: float = 1.0  # 1.0 is off; above 1 discourages repeats
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


def make_generator(seed: int | None) -> torch.Generator:
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def next_token(logits: torch.Tensor, params: GenerationParams, seen: list[int], generator: torch.Generator) -> int:
    """Pick the next token from one row of float32 logits (on the CPU).

    `seen` holds the prompt and generated ids, for the repetition penalty. The
    filters follow transformers' semantics, so the same settings mean the same
    thing here as in model.generate().
    """
    if params.repetition_penalty != 1.0:
        logits = logits.clone()
        seen = torch.tensor(seen)
        picked = logits[seen]
        picked = torch.where(picked < 0, picked * params.repetition_penalty, picked / params.repetition_penalty)
        logits[seen] = picked
    if params.temperature == 0:
        return int(logits.argmax())
    logits = logits / params.temperature
    if 0 < params.top_k < logits.shape[-1]:
        kth = torch.topk(logits, params.top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if params.top_p < 1.0:
        ordered, order = torch.sort(logits)
        cumulative = ordered.softmax(-1).cumsum(-1)
        drop = cumulative <= 1 - params.top_p
        drop[-1] = False  # always keep the most likely token
        logits = logits.masked_fill(drop.scatter(0, order, drop), float("-inf"))
    probs = logits.softmax(-1)
    return int(torch.multinomial(probs, 1, generator=generator))
