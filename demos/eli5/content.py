"""The explainers as data: read once from the YAML files beside this module.

Teachers edit concepts/*.yaml, glossary.yaml and jargon.yaml; nothing here
needs to change when the words do. Concept files are shown in the order of
their file names, which is why they start with a number.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

DATA_DIR = Path(__file__).parent


@dataclass(frozen=True)
class KeyIdea:
    id: str
    says: str
    phrasings: tuple[str, ...]  # affirmed, they cover the idea; denied, they contradict it
    negated_phrasings: tuple[str, ...] = ()  # the other way round: the idea is a "no" ("nobody has to install it again")


@dataclass(frozen=True)
class Correction:
    """A mistake the course sets straight, besides the concept's myth."""

    truth: str  # what the course says instead, as one sentence
    claims: tuple[str, ...]  # phrasings that state the mistake (see phrases.py)


@dataclass(frozen=True)
class Concept:
    id: str
    title: str
    like: str
    plain: str
    analogy: str
    diagram: str
    myth: str
    truth: str
    myth_claims: tuple[str, ...]  # phrasings that state the myth (see phrases.py)
    bridge: str
    example_language: str
    example: str
    key_ideas: tuple[KeyIdea, ...]
    sample_answer: str
    corrections: tuple[Correction, ...] = ()


@dataclass(frozen=True)
class GlossaryEntry:
    everyday: str
    technical: str
    meaning: str
    concept: str  # the id of the explainer that tells the full story


@dataclass(frozen=True)
class JargonTerm:
    term: str
    suggestion: str
    forms: tuple[str, ...]
    everyday_phrases: tuple[str, ...]


# Words that each find something, offered in the search box and when a search finds nothing.
GLOSSARY_EXAMPLES = ("airport", "recipe", "port")

_WORD = re.compile(r"\w+")


def _read_yaml(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _concept_from_file(path: Path) -> Concept:
    data = _read_yaml(path)
    misconception = data.pop("misconception")
    example = data.pop("example")
    ideas = tuple(
        KeyIdea(idea["id"], idea["says"], tuple(idea["phrasings"]), tuple(idea.get("negated_phrasings", ())))
        for idea in data.pop("key_ideas")
    )
    corrections = tuple(Correction(c["truth"].strip(), tuple(c["claims"])) for c in data.pop("corrections", ()))
    # Strip the trailing newline YAML block scalars keep, so the Markdown joins cleanly.
    text = {key: value.strip() for key, value in data.items()}
    return Concept(
        **text,
        myth=misconception["myth"].strip(),
        truth=misconception["truth"].strip(),
        myth_claims=tuple(misconception.get("claims", ())),
        example_language=example["language"],
        example=example["code"].strip(),
        key_ideas=ideas,
        corrections=corrections,
    )


@cache
def _concepts_by_id() -> dict[str, Concept]:
    files = sorted((DATA_DIR / "concepts").glob("*.yaml"))
    return {concept.id: concept for concept in map(_concept_from_file, files)}


def concepts() -> list[str]:
    """The concept ids, in the order the tab shows them."""
    return list(_concepts_by_id())


def get_concept(concept_id: str) -> Concept:
    """The concept with this id; a ValueError naming the known ids otherwise."""
    try:
        return _concepts_by_id()[concept_id]
    except (KeyError, TypeError):
        known = ", ".join(concepts())
        raise ValueError(f"Unknown concept {concept_id!r}. Known concepts: {known}.") from None


@cache
def jargon_terms() -> tuple[JargonTerm, ...]:
    return tuple(
        JargonTerm(
            term=entry["term"],
            suggestion=entry["suggestion"],
            forms=tuple(entry.get("forms", ())),
            everyday_phrases=tuple(entry.get("everyday_phrases", ())),
        )
        for entry in _read_yaml(DATA_DIR / "jargon.yaml")
    )


@cache
def _glossary() -> dict:
    return _read_yaml(DATA_DIR / "glossary.yaml")


@cache
def glossary_entries() -> tuple[GlossaryEntry, ...]:
    return tuple(GlossaryEntry(**row) for row in _glossary()["rows"])


@cache
def glossary_rows() -> tuple[tuple[str, str, str, str], ...]:
    return tuple(
        (entry.everyday, entry.technical, entry.meaning, get_concept(entry.concept).title)
        for entry in glossary_entries()
    )


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def spelled_out_words(query: str) -> list[str]:
    """The query's words in lower case, with abbreviations such as k8s spelled out."""
    spelled_out = {short.lower(): words for short, words in _glossary()["abbreviations"].items()}
    return [word for typed in _words(query) for word in _words(spelled_out.get(typed, typed))]


def _with_or_without_plural(word: str) -> set[str]:
    """So "pods" finds "pod", "pod" finds "pods", "addresses" "address" and "registries" "registry"."""
    forms = {word, word + "s", word + "es", word.removesuffix("s"), word.removesuffix("es")}
    if word.endswith("ies"):
        forms.add(word[:-3] + "y")
    elif word.endswith("y"):
        forms.add(word[:-1] + "ies")
    return forms


def _has_every_word(query_words: list[str], cells: tuple[str, ...]) -> bool:
    words = set(_words(" ".join(cells)))
    return all(_with_or_without_plural(word) & words for word in query_words)


def search_glossary(query: str) -> list[list[str]]:
    """Glossary rows holding every word of the query as a whole word, in any column.
    Rows whose everyday words or technical term hold them come before rows that
    only mention them in the meaning or the explainer's name."""
    words = spelled_out_words(query or "")
    found = [row for row in glossary_rows() if _has_every_word(words, row)]
    found.sort(key=lambda row: not _has_every_word(words, row[:2]))  # a stable sort keeps the file's order
    return [list(row) for row in found]


def _markdown_text(text: str) -> str:
    """Text shown exactly as typed: its punctuation is escaped, so a * or a [ is not read as Markdown."""
    return "".join("\\" + character if character in string.punctuation else character for character in text)


def glossary_markdown(query: str) -> str:
    """The matching glossary entries as Markdown, or a friendly note when none match.
    Each entry is a short paragraph rather than a table row: paragraphs wrap
    between words on any screen, while a phone squeezes table columns mid-word."""
    rows = search_glossary(query)
    if not rows:
        examples = ", ".join(f"*{word}*" for word in GLOSSARY_EXAMPLES)
        return (
            f"Nothing in the glossary matches “{_markdown_text(query.strip())}”. "
            f"Try a single word, such as {examples}, or clear the box to see every entry."
        )
    return "\n\n".join(
        f"**{everyday}** → **{technical}**  \n{meaning} *More in the {explainer} explainer.*"
        for everyday, technical, meaning, explainer in rows
    )


def explainer_markdown(concept_id: str) -> str:
    """The whole explainer as one Markdown page, diagram included."""
    concept = get_concept(concept_id)
    set_straight = "".join(f"\n- {correction.truth}" for correction in concept.corrections)
    also = f"\n\n**Also worth getting right:**{set_straight}" if set_straight else ""
    return f"""## {concept.title}: {concept.like}

### In plain words
{concept.plain}

### The analogy
{concept.analogy}

### The picture
```mermaid
{concept.diagram}
```

### A common mix-up
❌ **Many people think:** {concept.myth}

✅ **In fact:** {concept.truth}{also}

### Now the technical words
{concept.bridge}

```{concept.example_language}
{concept.example}
```
"""
