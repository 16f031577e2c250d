"""The explainers as data: read once from the YAML files beside this module.

Teachers edit concepts/*.yaml, glossary.yaml and jargon.yaml; nothing here
needs to change when the words do. Concept files are shown in the order of
their file names, which is why they start with a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

DATA_DIR = Path(__file__).parent


@dataclass(frozen=True)
class KeyIdea:
    id: str
    says: str
    phrasings: tuple[str, ...]


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
    bridge: str
    example_language: str
    example: str
    key_ideas: tuple[KeyIdea, ...]
    sample_answer: str


@dataclass(frozen=True)
class JargonTerm:
    term: str
    suggestion: str
    forms: tuple[str, ...]


GLOSSARY_HEADERS = ["Everyday words", "Technical term", "What it means", "Explainer"]


def _read_yaml(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _concept_from_file(path: Path) -> Concept:
    data = _read_yaml(path)
    misconception = data.pop("misconception")
    example = data.pop("example")
    ideas = tuple(
        KeyIdea(id=idea["id"], says=idea["says"], phrasings=tuple(idea["phrasings"]))
        for idea in data.pop("key_ideas")
    )
    # Strip the trailing newline YAML block scalars keep, so the Markdown joins cleanly.
    text = {key: value.strip() for key, value in data.items()}
    return Concept(
        **text,
        myth=misconception["myth"].strip(),
        truth=misconception["truth"].strip(),
        example_language=example["language"],
        example=example["code"].strip(),
        key_ideas=ideas,
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
        JargonTerm(term=entry["term"], suggestion=entry["suggestion"], forms=tuple(entry.get("forms", ())))
        for entry in _read_yaml(DATA_DIR / "jargon.yaml")
    )


@cache
def glossary_rows() -> tuple[tuple[str, str, str, str], ...]:
    return tuple(
        (row["everyday"], row["technical"], row["meaning"], get_concept(row["concept"]).title)
        for row in _read_yaml(DATA_DIR / "glossary.yaml")
    )


def search_glossary(query: str) -> list[list[str]]:
    """Glossary rows that contain every word of the query, in any column."""
    words = (query or "").lower().split()
    return [
        list(row)
        for row in glossary_rows()
        if all(word in " ".join(row).lower() for word in words)
    ]


def explainer_markdown(concept_id: str) -> str:
    """The whole explainer as one Markdown page, diagram included."""
    concept = get_concept(concept_id)
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

✅ **In fact:** {concept.truth}

### Now the technical words
{concept.bridge}

```{concept.example_language}
{concept.example}
```
"""
