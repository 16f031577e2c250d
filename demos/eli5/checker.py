"""The "explain it back" checker: plain word matching, no model involved.

A key idea counts as covered only where a clause of the learner's affirms
it; a clause that denies it ("Docker is not a box") contradicts it, and so
does one that states the concept's myth or a mistake its corrections set
straight. Clauses, negations and "if…" are read by demos/eli5/phrases.py.
An explanation that contradicts the course is never praised, and a learner
who denies the myth is told so.

The learner's text is only ever searched for words, never followed, so
instructions hidden in it cannot change the verdict. It runs in linear
time, so a megabyte of text is checked in well under a second.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache

from .content import Concept, JargonTerm, get_concept, jargon_terms
from .phrases import Found, find, normalise, phrases_pattern, stated

# A "good" explanation may slip in a couple of technical words; a "great" one none.
JARGON_ALLOWED_IN_GOOD = 2
# Fewer words than this make a phrase, not an explanation, whatever words they are.
MIN_WORDS = 8

VERDICT_HEADLINES = {
    "great": "🌟 Great: your listener would get it.",
    "good": "👍 Good: the heart of it is there.",
    "needs-work": "🌱 Needs work: keep going, you are on your way.",
}
TOO_SHORT_FEEDBACK = """### ✏️ Write a few sentences first.

A handful of words is not enough to explain an idea. Tell your listener what it
is and why it matters, in a few sentences, the way you would say it out loud."""


def _forms(entry: JargonTerm) -> tuple[str, ...]:
    return (entry.term, *entry.forms)


@cache
def _jargon_pattern() -> re.Pattern[str]:
    """All jargon in one plain alternation, so long texts are read once. (Named
    groups per term would be simpler to map back, but make the regex ten times slower.)
    Everyday phrases such as "for instance" are in it too, listed first, so that they
    win over the jargon inside them; they match no term and are then passed over."""
    everyday = tuple(phrase for entry in jargon_terms() for phrase in entry.everyday_phrases)
    return phrases_pattern(everyday + tuple(form for entry in jargon_terms() for form in _forms(entry)))


@lru_cache(maxsize=1024)  # bounded: a long text may use many spellings
def _jargon_entry(found: str) -> JargonTerm | None:
    """The term this spelling belongs to; None for an everyday phrase."""
    return next((entry for entry in jargon_terms() if phrases_pattern(_forms(entry)).fullmatch(found)), None)


def _jargon_used(words: str) -> list[dict[str, str]]:
    """Each technical term found, once, in the order the learner first used it."""
    first_uses: dict[str, str] = {}
    for match in _jargon_pattern().finditer(words):
        entry = _jargon_entry(match.group())
        if entry:
            first_uses.setdefault(entry.term, entry.suggestion)
    return [{"term": term, "suggestion": suggestion} for term, suggestion in first_uses.items()]


_FIRST_SENTENCE = re.compile(r"(?<=[.!?])\s+")
MYTH = "misconception"  # the id a contradiction of the concept's myth is listed under
MISTAKE = "mistake"  # the id of a mistake that one of the concept's corrections sets straight


def _verdict(covered: int, total: int, jargon_count: int, too_short: bool, contradicted: int, myth_denied: bool) -> str:
    if too_short or contradicted:
        return "needs-work"
    if covered == total and jargon_count == 0:
        return "great"
    # Setting the common mix-up straight counts as one idea towards "good".
    if (covered + myth_denied) * 2 >= total and jargon_count <= JARGON_ALLOWED_IN_GOOD:
        return "good"
    return "needs-work"


# "You never have to fix the machines yourself" denies a chore, not the idea that
# someone else does it: such a clause neither covers nor contradicts.
_SPARES_YOU = re.compile(r"\b(?:have|has|need|needs|got) to\b|\byourself\b|\bby hand\b|\bmanually\b|\bfor you\b")


def _spares_you(clause: str) -> bool:
    return bool(_SPARES_YOU.search(normalise(clause)))


def _contradiction(idea: str, found: Found, course: str) -> dict[str, str]:
    """The learner's clause and the course's first sentence on the point."""
    return {"idea": idea, "clause": found.clause, "course": _FIRST_SENTENCE.split(course.strip(), maxsplit=1)[0]}


def _readings(concept: Concept, text: str) -> tuple[list[str], list[dict[str, str]], bool]:
    """The key ideas the text affirms, the contradictions it holds, and whether it denies the myth."""
    covered, contradicted = [], []
    for idea in concept.key_ideas:
        # An idea said as a condition ("if a copy breaks, …") is still said; only a plain denial contradicts it.
        found, found_negated = find(text, idea.phrasings), find(text, idea.negated_phrasings)
        if any(f.affirmed for f in found) or any(not f.affirmed or f.hypothetical for f in found_negated):
            covered.append(idea.id)
        elif opposite := next((f for f in found if f.denied and not _spares_you(f.clause)), None) or next(iter(found_negated), None):
            contradicted.append(_contradiction(idea.id, opposite, idea.says))
    myth = find(text, concept.myth_claims)
    if said := next((f for f in myth if f.stated), None):
        contradicted.append(_contradiction(MYTH, said, concept.truth))
    for correction in concept.corrections:
        if mistake := stated(text, correction.claims):
            contradicted.append(_contradiction(MISTAKE, mistake, correction.truth))
    return covered, contradicted, any(f.denied for f in myth) and not said


def check_explanation(concept_id: str, text: str) -> dict:
    """Which key ideas the text covers or contradicts, which jargon it uses, and a verdict.

    Returns {"jargon": [{"term", "suggestion"}], "covered": [idea ids],
    "missed": [idea ids], "contradicted": [{"idea", "clause", "course"}],
    "myth_denied": bool, "too_short": bool, "verdict": "great" | "good" | "needs-work"}.
    A contradicted idea is the learner's clause that denies it ("idea" is
    MYTH for a clause that states the concept's myth, MISTAKE for one that
    states a mistake of its corrections) with the course's sentence; it is
    not missed, and its explanation always needs work.
    A text of fewer than MIN_WORDS words is too short and always needs work.
    Raises ValueError for an unknown concept id.
    """
    concept = get_concept(concept_id)
    text = text or ""
    words = normalise(text)
    covered, contradicted, myth_denied = _readings(concept, text)
    denied = {c["idea"] for c in contradicted}
    missed = [idea.id for idea in concept.key_ideas if idea.id not in covered and idea.id not in denied]
    jargon = _jargon_used(words)
    too_short = len(words.split()) < MIN_WORDS
    return {
        "jargon": jargon,
        "covered": covered,
        "missed": missed,
        "contradicted": contradicted,
        "myth_denied": myth_denied,
        "too_short": too_short,
        "verdict": _verdict(len(covered), len(concept.key_ideas), len(jargon), too_short, len(contradicted), myth_denied),
    }


def feedback_markdown(concept_id: str, result: dict) -> str:
    """The checker's result as friendly Markdown for the learner."""
    ideas = {idea.id: idea.says for idea in get_concept(concept_id).key_ideas}
    lines = [TOO_SHORT_FEEDBACK if result["too_short"] else f"### {VERDICT_HEADLINES[result['verdict']]}", ""]
    if result["contradicted"]:
        lines += ["**Where your explanation says the opposite of the course**"]
        for said in result["contradicted"]:
            what = {MYTH: "is the common mix-up", MISTAKE: "is a mistake"}.get(said["idea"], "denies this idea")
            lines += [f"- 🔁 You wrote “{said['clause']}”, which {what}. The course says: {said['course']}"]
        lines.append("")
    if result["covered"]:
        lines += ["**Ideas you got across**", *(f"- ✅ {ideas[idea]}" for idea in result["covered"]), ""]
    if result["myth_denied"]:
        lines += ["✅ You set the common mix-up straight.", ""]
    if result["missed"]:
        lines += ["**Ideas to add**", *(f"- ➕ {ideas[idea]}" for idea in result["missed"]), ""]
    if result["jargon"]:
        lines += [
            "**Words your listener may not know**",
            *(f"- *{word['term']}*: try “{word['suggestion']}”" for word in result["jargon"]),
        ]
    elif result["covered"] and not result["too_short"]:  # only praise words that explain something
        lines.append("No jargon spotted. Lovely and plain.")
    return "\n".join(lines)
