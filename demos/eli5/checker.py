"""The "explain it back" checker: plain word matching, no model involved.

The learner's text is only ever searched for words, never followed, so
instructions hidden in it cannot change the verdict. It runs in linear
time, so a megabyte of text is checked in well under a second.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache

from .content import JargonTerm, get_concept, jargon_terms
from .phrases import normalise, phrases_pattern

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


def _verdict(covered: int, total: int, jargon_count: int, too_short: bool) -> str:
    if too_short:
        return "needs-work"
    if covered == total and jargon_count == 0:
        return "great"
    if covered * 2 >= total and jargon_count <= JARGON_ALLOWED_IN_GOOD:
        return "good"
    return "needs-work"


def check_explanation(concept_id: str, text: str) -> dict:
    """Which key ideas the text covers, which jargon it uses, and a verdict.

    Returns {"jargon": [{"term", "suggestion"}], "covered": [idea ids],
    "missed": [idea ids], "too_short": bool, "verdict": "great" | "good" | "needs-work"}.
    A text of fewer than MIN_WORDS words is too short and always needs work.
    Raises ValueError for an unknown concept id.
    """
    concept = get_concept(concept_id)
    words = normalise(text or "")
    covered = [idea.id for idea in concept.key_ideas if phrases_pattern(idea.phrasings).search(words)]
    missed = [idea.id for idea in concept.key_ideas if idea.id not in covered]
    jargon = _jargon_used(words)
    too_short = len(words.split()) < MIN_WORDS
    return {
        "jargon": jargon,
        "covered": covered,
        "missed": missed,
        "too_short": too_short,
        "verdict": _verdict(len(covered), len(concept.key_ideas), len(jargon), too_short),
    }


def feedback_markdown(concept_id: str, result: dict) -> str:
    """The checker's result as friendly Markdown for the learner."""
    ideas = {idea.id: idea.says for idea in get_concept(concept_id).key_ideas}
    lines = [TOO_SHORT_FEEDBACK if result["too_short"] else f"### {VERDICT_HEADLINES[result['verdict']]}", ""]
    if result["covered"]:
        lines += ["**Ideas you got across**", *(f"- ✅ {ideas[idea]}" for idea in result["covered"]), ""]
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
