"""Prompt-lookup drafts: guessing a reply's next tokens from the tokens it already has.

A grounded reply copies phrases from its notes, and a conversation repeats
its own words. Where the latest few tokens appeared before, the tokens that
followed them then are a free guess at what follows now. The engine checks a
guess in the same step as its other rows (Engine._decode_step) and keeps the
longest prefix the model agrees with, so a greedy reply is token for token
what it would have been without drafts.
"""

from __future__ import annotations

NGRAMS = (3, 2)  # how many of the latest tokens must have appeared before, longest tried first
LONGEST = 8  # drafted tokens a request may have checked in one step
FIRST = 4  # the draft length a request starts with


class Drafter:
    """One request's drafts: where each 2- and 3-token run of its prompt and reply was last seen,
    and how long a draft to try, grown while drafts are taken whole and shrunk when they miss.

    A miss costs a step its drafted rows, so after a draft misses at its first token
    the request drafts nothing for 1, 2, 4, … steps: a chat that never repeats itself
    soon stops paying for guesses.
    """

    def __init__(self, prompt: list[int]):
        self.tokens: list[int] = []
        self._seen: dict[tuple[int, ...], int] = {}  # a run of tokens -> where the token after its latest occurrence is
        self.length, self._misses, self._resting = FIRST, 0, 0
        self._add(prompt)
        self._reply_added = 0

    def _add(self, tokens: list[int]) -> None:
        for token in tokens:
            # The runs that end at the current last token are followed by `token`.
            end = len(self.tokens)
            for n in NGRAMS:
                if end >= n:
                    self._seen[tuple(self.tokens[end - n:end])] = end
            self.tokens.append(token)

    def draft(self, reply: list[int], room: int) -> list[int]:
        """Up to `room` tokens guessed to follow the prompt and `reply` (the tokens so far), or none."""
        self._add(reply[self._reply_added:])
        self._reply_added = len(reply)
        if self._resting:
            self._resting -= 1
            return []
        room = min(room, self.length)
        for n in NGRAMS:
            at = self._seen.get(tuple(self.tokens[-n:])) if len(self.tokens) > n else None
            if at is not None:
                return self.tokens[at:at + room] if room > 0 else []
        return []

    def checked(self, drafted: int, accepted: int) -> None:
        """How a draft fared: grow the next one after a whole match, shrink it after a partial one,
        and rest after one that missed at once."""
        if accepted == drafted:
            self.length, self._misses = min(self.length + 2, LONGEST), 0
        elif accepted:
            self.length, self._misses = max(accepted, 1), 0
        else:
            self.length = 1
            self._resting = min(2 ** self._misses, 32)
            self._misses += 1
