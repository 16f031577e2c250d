"""A grounded reply keeps only what the course supports.

Even with the course's notes in its prompt, the small default model writes
sentences the notes do not say ("SSH usually uses port 23") and sometimes
the very mix-up an explainer corrects ("a container is a kind of virtual
machine"). Each finished sentence of a grounded reply is therefore checked:

- it must not affirm a concept's myth, nor a mistake that the concept's
  corrections set straight (phrasings in the concept's YAML, read with
  negations by demos/eli5/phrases.py); a reply that opens with "Yes" to a
  question that asks about one ("Does EXPOSE publish the port?") affirms it;
- it must not give a program's usual port to another program, by the Ports
  tab's table of well-known ports ("Port 443 is usually for SSH");
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
from demos.eli5.phrases import negates, normalise, stated
from demos.ports.well_known import describe, lookup, programs

from .retrieval import stems

SUPPORTED_SHARE = 0.5  # chosen on scripts/chat_eval_questions.yaml (docs/GROUNDING.md)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_NUMBER = re.compile(r"\d+")
_YES = re.compile(r"\s*(?:yes|yeah|yep|correct|exactly|that's right|that is right|true)\b", re.IGNORECASE)
# A yes/no question, from its auxiliary verb: "are gradio and streamlit the same thing".
_YES_OR_NO = re.compile(r"(is|are|does|do|did|can|will|should|must|has|have)\s+(.+?)\W*$", re.IGNORECASE)
_SUBJECT_WORDS = 6  # the longest subject tried: "EXPOSE in a Dockerfile" is 4
_URL = re.compile(r"\S+://\S+")
# Words that make a port a program's own rather than where one copy happens to be published
# ("open the Gradio app on port 8080" after -p 8080:7860 is right).
_USUAL = re.compile(r"\b(?:default|usual|usually|standard|normally|typically|commonly|well[- ]known|is for|is used for|is reserved for)\b", re.IGNORECASE)


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


def misnames_a_port(sentence: str) -> Correction | None:
    """A port said to be a program's usual one when the ports table gives it to another ("Port 443
    is usually for SSH"), as a correction with the table's answer. Only a sentence with one number
    and one program, no negation and a word such as "default" or "usually" is read."""
    text = _URL.sub(" ", sentence)
    numbers = set(_NUMBER.findall(text))
    named = [name for name in programs() if re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", text, re.IGNORECASE)]
    if len(numbers) != 1 or len(named) != 1 or not _USUAL.search(text) or negates(text):
        return None
    port, name = int(numbers.pop()), named[0]
    if lookup(port) is None or port in programs()[name]:
        return None
    usual = " or ".join(map(str, programs()[name]))
    return Correction(f"{name}'s usual port is {usual}; {describe(port)}.", ())


def statements_asked(question: str) -> list[str]:
    """What a yes/no question asks, said as statements: "Does EXPOSE in a Dockerfile publish the
    port?" asks whether "EXPOSE in a Dockerfile publish the port" (the "does" dropped) or, for other
    verbs, "Gradio and Streamlit are the same thing". Where the subject ends is not known, so the
    verb goes after each of its first few words in turn; only the clause after the last comma
    counts ("If I change a file, does the image change too?")."""
    match = _YES_OR_NO.match(re.split(r"[,;:]\s+", question.strip())[-1])
    if not match:
        return []
    verb, words = match.group(1).lower(), match.group(2).split()
    if verb in ("do", "does", "did"):
        return [" ".join(words)]
    return [" ".join(words[:n] + [verb] + words[n:]) for n in range(1, min(len(words), _SUBJECT_WORDS) + 1)]


def wrong_if_yes(question: str) -> Concept | Correction | None:
    """The myth (its concept) or the mistake that answering the question "yes" would state."""
    for statement in statements_asked(question):
        if wrong := states_a_myth(statement) or makes_a_mistake(statement):
            return wrong
    return None


def check_reply(reply: str, support: Support | None, finished: bool, question: str = "") -> Checked:
    """The reply's finished sentences that the course backs, and what was left out.

    With no support (a question the course does not cover) only myths and mistakes are left out.

    A sentence that only repeats the question is left out without a word.

    While the reply still streams, its last sentence may be unfinished: it is
    held back until it ends and can be judged, so a learner never sees a
    sentence that is then taken away.
    """
    checked, start = Checked(""), 0
    kept = []
    # The small model sometimes opens by copying its prompt's last line, "Question: …": not an answer.
    echo = {normalise(question), normalise(f"Question: {question}")} if question else set()
    yes_says = wrong_if_yes(question) if _YES.match(reply) else None
    ends = [match.end() for match in _SENTENCE_END.finditer(reply)]
    for number, end in enumerate(ends + ([len(reply)] if finished else [])):
        sentence, start = reply[start:end], end
        if normalise(sentence) in echo:
            continue
        wrong = (yes_says if number == 0 else None) or states_a_myth(sentence) or makes_a_mistake(sentence) or misnames_a_port(sentence)
        if isinstance(wrong, Concept):
            if wrong not in checked.corrected:
                checked.corrected.append(wrong)
        elif wrong is not None:
            if wrong not in checked.set_straight:
                checked.set_straight.append(wrong)
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
