"""The "explain it back" checker: plain word matching, no model involved.

The learner's text is only ever searched for words, never followed, so
instructions hidden in it cannot change the verdict. It runs in linear
time, so a megabyte of text is checked in well under a second.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache

from .content import JargonTerm, get_concept, jargon_terms

# A "good" explanation may slip in a couple of technical words; a "great" one none.
JARGON_ALLOWED_IN_GOOD = 2

_NOT_A_WORD_CHARACTER = re.compile(r"[^a-z0-9]+")

VERDICT_HEADLINES = {
    "great": "🌟 Great: your listener would get it.",
    "good": "👍 Good: the heart of it is there.",
    "needs-work": "🌱 Needs work: keep going, you are on your way.",
}


def _normalise(text: str) -> str:
    """Lower case, with every run of punctuation or spacing turned into one space."""
    return _NOT_A_WORD_CHARACTER.sub(" ", text.lower()).strip()


def _alternatives(phrasings: tuple[str, ...]) -> str:
    """A regex alternation of the phrasings; a trailing * on a word allows any ending."""
    # Normalised words hold only letters, digits and spaces, so they need no escaping.
    return "|".join(
        " ".join(_normalise(word) + ("[a-z0-9]*" if word.endswith("*") else "") for word in phrasing.split())
        for phrasing in phrasings
    )


@cache
def _phrases_pattern(phrasings: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(rf"\b(?:{_alternatives(phrasings)})\b")


def _forms(entry: JargonTerm) -> tuple[str, ...]:
    return (entry.term, *entry.forms)


@cache
def _jargon_pattern() -> re.Pattern[str]:
    """All jargon in one plain alternation, so long texts are read once. (Named
    groups per term would be simpler to map back, but make the regex ten times slower.)"""
    return _phrases_pattern(tuple(form for entry in jargon_terms() for form in _forms(entry)))


@lru_cache(maxsize=1024)  # bounded: a long text may use many spellings
def _jargon_entry(found: str) -> JargonTerm:
    return next(entry for entry in jargon_terms() if _phrases_pattern(_forms(entry)).fullmatch(found))


def _jargon_used(words: str) -> list[dict[str, str]]:
    """Each technical term found, once, in the order the learner first used it."""
    first_uses: dict[str, str] = {}
    for match in _jargon_pattern().finditer(words):
        entry = _jargon_entry(match.group())
        first_uses.setdefault(entry.term, entry.suggestion)
    return [{"term": term, "suggestion": suggestion} for term, suggestion in first_uses.items()]


def _verdict(covered: int, total: int, jargon_count: int) -> str:
    if covered == total and jargon_count == 0:
        return "great"
    if covered * 2 >= total and jargon_count <= JARGON_ALLOWED_IN_GOOD:
        return "good"
    return "needs-work"


def check_explanation(concept_id: str, text: str) -> dict:
    """Which key ideas the text covers, which jargon it uses, and a verdict.

    Returns {"jargon": [{"term", "suggestion"}], "covered": [idea ids],
    "missed": [idea ids], "verdict": "great" | "good" | "needs-work"}.
    Raises ValueError for an unknown concept id.
    """
    concept = get_concept(concept_id)
    words = _normalise(text or "")
    covered = [idea.id for idea in concept.key_ideas if _phrases_pattern(idea.phrasings).search(words)]
    missed = [idea.id for idea in concept.key_ideas if idea.id not in covered]
    jargon = _jargon_used(words)
    return {
        "jargon": jargon,
        "covered": covered,
        "missed": missed,
        "verdict": _verdict(len(covered), len(concept.key_ideas), len(jargon)),
    }


def feedback_markdown(concept_id: str, result: dict) -> str:
    """The checker's result as friendly Markdown for the learner."""
    ideas = {idea.id: idea.says for idea in get_concept(concept_id).key_ideas}
    lines = [f"### {VERDICT_HEADLINES[result['verdict']]}", ""]
    if result["covered"]:
        lines += ["**Ideas you got across**", *(f"- ✅ {ideas[idea]}" for idea in result["covered"]), ""]
    if result["missed"]:
        lines += ["**Ideas to add**", *(f"- ➕ {ideas[idea]}" for idea in result["missed"]), ""]
    if result["jargon"]:
        lines += [
            "**Words your listener may not know**",
            *(f"- *{word['term']}*: try “{word['suggestion']}”" for word in result["jargon"]),
        ]
    else:
        lines.append("No jargon spotted. Lovely and plain.")
    return "\n".join(lines)
