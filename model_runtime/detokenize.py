"""From token ids to the text a person sees, one safe piece at a time.

A token can end in the middle of a UTF-8 character, and a stop string can
span tokens, so text is only released once no later token can change it.
"""

from __future__ import annotations


class IncrementalText:
    def __init__(self, tokenizer, stop: list[str]):
        self.tokenizer = tokenizer
        self.stop = stop
        self.ids: list[int] = []
        self.text = ""  # all text decoded so far, stop string excluded
        self.released = 0  # how much of self.text has been handed out
        # ids[:read] are in self.text. Only the tokens from the read before that are decoded
        # again: decoding the whole reply at every token would cost time in proportion to its
        # length (half a millisecond at 1,000 tokens), for every stream, under the GIL.
        self.last_read = self.read = 0

    def add(self, token_id: int) -> tuple[str, bool]:
        """Add one token; return (newly safe text, whether a stop string was hit)."""
        self.ids.append(token_id)
        known = self.decode(self.ids[self.last_read : self.read])
        recent = self.decode(self.ids[self.last_read :])
        if recent.endswith("\ufffd"):  # an incomplete character: wait for the next token
            return "", False
        # A tokenizer that decodes a piece differently from the whole (none we know of) is decoded whole.
        text = self.text + recent[len(known) :] if recent.startswith(known) else self.decode(self.ids)
        self.last_read, self.read = self.read, len(self.ids)
        self.text = text
        hit = self._find_stop()
        if hit is not None:
            self.text = text[:hit]
            return self._release(len(self.text)), True
        return self._release(len(text) - self._stop_prefix_len(text)), False

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def flush(self) -> str:
        """The text still held back, for when the reply ends for another reason."""
        return self._release(len(self.text))

    def _release(self, upto: int) -> str:
        upto = max(upto, self.released)
        piece = self.text[self.released : upto]
        self.released = upto
        return piece

    def _find_stop(self) -> int | None:
        # A stop string can only newly appear in the text not yet released,
        # plus the overlap a stop string could have with the released part.
        start = max(0, self.released - max((len(s) for s in self.stop), default=0))
        hits = [i for s in self.stop if (i := self.text.find(s, start)) >= 0]
        return min(hits) if hits else None

    def _stop_prefix_len(self, text: str) -> int:
        """Length of the longest end of `text` that could still grow into a stop string."""
        longest = 0
        for s in self.stop:
            for n in range(min(len(s) - 1, len(text)), longest, -1):
                if text.endswith(s[:n]):
                    longest = n
                    break
        return longest
