"""Prompt-lookup drafts: guessing a reply's next tokens from the tokens it already has.

A grounded reply copies phrases from its notes, and a conversation repeats
its own words. Where the latest few tokens appeared before, the tokens that
followed them then are a free guess at what follows now. The engine checks
guesses in the same step as its other rows (Engine._decode_step) and keeps
the longest prefix the model agrees with, so a greedy reply is token for
token what it would have been without drafts.

A checked guess is not free: each drafted row adds to the step's time.
`plan` drafts only where the tokens a guess is expected to add are worth
the rows it adds, given how many requests share the step.
"""

from __future__ import annotations

NGRAMS = (3, 2)  # how many of the latest tokens must have appeared before, longest tried first
LONGEST = 8  # drafted tokens a request may have checked in one step
# What a step's row costs beyond its first, as a share of a one-row step: measured on two cores
# (docs/PERFORMANCE.md, "Grounded replies"), where 8 rows cost 2.1 one-row steps and 24 cost 4.9.
ROW_COST = 0.2
FORGET = 0.5  # how much of its earlier drafts a request's estimate keeps at each check
HOPE = (3.0, 1.0)  # kept and missed: the prior a request starts from
RECOVER = 0.1  # the share of the way back to HOPE each step goes, so a guess that stopped paying is retried


def step_cost(rows: int) -> float:
    """A step's time in one-row steps."""
    return 1 + ROW_COST * (rows - 1)


class Drafter:
    """One request's guesses: where each 2- and 3-token run of its prompt and reply was last
    seen, and how likely its next drafted token is to be kept, judged from its latest drafts."""

    def __init__(self, prompt: list[int]):
        self.tokens: list[int] = []
        self._seen: dict[tuple[int, ...], int] = {}  # a run of tokens -> where the token after its latest occurrence is
        # Kept and rejected drafted tokens, decayed, from a hopeful prior: a request's first guess
        # is tried even in a full step, a few misses stop its guessing, and it hopes again a little
        # every step (a reply that starts in its own words may go on to quote its notes).
        self._kept, self._missed = HOPE
        self._add(prompt)
        self._reply_added = 0

    @property
    def odds(self) -> float:
        """The chance that a drafted token is kept, given that the ones before it were."""
        return self._kept / (self._kept + self._missed)

    def _add(self, tokens: list[int]) -> None:
        for token in tokens:
            # The runs that end at the current last token are followed by `token`.
            end = len(self.tokens)
            for n in NGRAMS:
                if end >= n:
                    self._seen[tuple(self.tokens[end - n:end])] = end
            self.tokens.append(token)

    def draft(self, reply: list[int], room: int) -> list[int]:
        """Up to `room` tokens that followed the latest occurrence of the prompt and `reply`'s last tokens."""
        self._add(reply[self._reply_added:])
        self._reply_added = len(reply)
        self._kept += RECOVER * (HOPE[0] - self._kept)
        self._missed += RECOVER * (HOPE[1] - self._missed)
        for n in NGRAMS:
            at = self._seen.get(tuple(self.tokens[-n:])) if len(self.tokens) > n else None
            if at is not None:
                return self.tokens[at:at + max(room, 0)]
        return []

    def checked(self, drafted: int, accepted: int) -> None:
        """Count a checked draft: its kept tokens, and its first rejected one, if any."""
        self._kept = FORGET * self._kept + accepted
        self._missed = FORGET * self._missed + (accepted < drafted)


def plan(batch: int, guesses: list[tuple[list[int], float]], budget: int) -> list[list[int]]:
    """How much of each request's guess (its tokens, and the odds of each being kept) a step of
    `batch` requests checks, within `budget` drafted rows.

    A guess's first m tokens add the odds plus the odds squared … up to the m-th power in
    expected tokens, and m rows to the step. The likeliest guesses are taken first, each cut
    where the step's expected tokens per unit of time are highest, and left out unless they raise it.
    """
    rows, tokens = batch, float(batch)
    chosen: list[list[int]] = [[] for _ in guesses]
    for i in sorted(range(len(guesses)), key=lambda i: -guesses[i][1]):
        draft, odds = guesses[i]
        best, best_rate, expected, best_expected = 0, tokens / step_cost(rows), 0.0, 0.0
        for m in range(1, min(len(draft), budget) + 1):
            expected += odds ** m
            if (tokens + expected) / step_cost(rows + m) > best_rate:
                best, best_rate, best_expected = m, (tokens + expected) / step_cost(rows + m), expected
        chosen[i] = draft[:best]
        rows, tokens, budget = rows + best, tokens + best_expected, budget - best
    return chosen
