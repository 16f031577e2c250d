"""A grounded reply keeps only what the course supports.

Even with the course's notes in its prompt, the small default model writes
sentences the notes do not say ("SSH usually uses port 23") and sometimes
the very mix-up an explainer corrects ("a container is a kind of virtual
machine"). Each finished sentence of a grounded reply is therefore checked:

- it must not affirm a concept's myth, nor a mistake that the concept's
  corrections set straight (phrasings in the concept's YAML, read with
  negations by demos/eli5/phrases.py);
- every number in it must appear in the question or the notes;
- at least SUPPORTED_SHARE of its content words must appear there too.

A sentence that fails is left out, and the reply says how many were, and
what the course says instead of a mistake. On the
default model most of what it adds is left out; the learner still gets the
course's own words under the reply (docs/GROUNDING.md has the figures).
Deterministic and linear in the reply's length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from demos.eli5.content import Concept, Correction, concepts, get_concept
from demos.eli5.phrases import stated

from .retrieval import stems

SUPPORTED_SHARE = 0.5  # chosen on scripts/chat_eval_questions.yaml (docs/GROUNDING.md)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_NUMBER = re.compile(r"\d+")


@dataclass
class Checked:
    text: str  # the reply with the sentences that failed left out
    corrected: list[Concept] = field(default_factory=list)  # whose myths a dropped sentence stated
    set_straight: list[Correction] = field(default_factory=list)  # the other mistakes a dropped sentence made
    unsupported: int = 0  # sentences dropped because the notes do not say them


def states_a_myth(sentence: str) -> Concept | None:
    return next((get_concept(c) for c in concepts() if stated(sentence, get_concept(c).myth_claims)), None)


def makes_a_mistake(sentence: str) -> Correction | None:
    """The correction whose mistake the sentence states, of any concept."""
    corrections = (correction for c in concepts() for correction in get_concept(c).corrections)
    return next((correction for correction in corrections if stated(sentence, correction.claims)), None)


class Support:
    """What the question and the notes say: their stems and their numbers."""

    def __init__(self, text: str) -> None:
        self.stems = set(stems(text))
        self.numbers = set(_NUMBER.findall(text))

    def backs(self, sentence: str) -> bool:
        if not set(_NUMBER.findall(sentence)) <= self.numbers:
            return False
        said = stems(sentence)
        if not said:  # "Yes." stays; a broken-off "While there" says nothing
            return sentence.rstrip().endswith((".", "!", "?"))
        return sum(stem in self.stems for stem in said) >= SUPPORTED_SHARE * len(said)


def check_reply(reply: str, support: Support | None, finished: bool) -> Checked:
    """The reply's finished sentences that the course backs, and what was left out.

    With no support (a question the course does not cover) only myths and mistakes are left out.

    While the reply still streams, its last sentence may be unfinished: it is
    held back until it ends and can be judged, so a learner never sees a
    sentence that is then taken away.
    """
    checked, start = Checked(""), 0
    kept = []
    ends = [match.end() for match in _SENTENCE_END.finditer(reply)]
    for end in ends + ([len(reply)] if finished else []):
        sentence, start = reply[start:end], end
        concept = states_a_myth(sentence)
        if concept is not None:
            if concept not in checked.corrected:
                checked.corrected.append(concept)
        elif (correction := makes_a_mistake(sentence)) is not None:
            if correction not in checked.set_straight:
                checked.set_straight.append(correction)
        elif support is None or support.backs(sentence):
            kept.append(sentence)
        else:
            checked.unsupported += 1
    checked.text = "".join(kept)
    return checked


def left_out_note(checked: Checked) -> str:
    """One line under the reply saying what was left out, or "" when nothing was, then what the
    course says instead of each mistake left out.

    When all of it was, the line says so and points at the course's words below."""
    parts = []
    if checked.corrected:
        titles = " and ".join(f"“{concept.title}: a common mix-up”" for concept in checked.corrected)
        parts.append(f"a sentence that repeated a common mix-up (the course sets it straight in {titles})")
    if checked.set_straight:
        s = "s" if len(checked.set_straight) > 1 else ""
        parts.append(f"the mistake{s} that the course sets straight below")
    if checked.unsupported:
        s = "s" if checked.unsupported > 1 else ""
        parts.append(f"{checked.unsupported} sentence{s} that the course's notes do not back")
    if not parts:
        return ""
    truths = "".join(f"\n\n📘 The course says: {correction.truth}" for correction in checked.set_straight)
    if not checked.text.strip():
        return f"✂️ *The model's whole reply is left out: {'; '.join(parts)}. Here is what the course says:*{truths}"
    return f"✂️ *Left out of the model's reply: {'; '.join(parts)}.*{truths}"
