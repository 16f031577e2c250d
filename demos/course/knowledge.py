"""The course's knowledge as passages: what the chat may quote and the learner may open.

Every passage is cut from a file another tab already reads (the ELI5
concepts, glossary and jargon list, the well-known ports table, the Ports
diagnostic codes), so there is no second copy of any text: editing a
concept's YAML changes what the chat knows at the next start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from demos.eli5.content import Concept, concepts, get_concept, glossary_entries, jargon_terms
from demos.ports.codes import diagnostic_codes
from demos.ports.well_known import describe, table

_EMPHASIS = re.compile(r"\*\*|(?<!\w)\*(?=\S)|(?<=\S)\*(?!\w)")


@dataclass(frozen=True)
class Passage:
    id: str  # stable and unique: "docker/mix-up", "port/7860", "diagnostic/host-port-conflict"
    kind: str  # plain, analogy, mix-up, technical, example, glossary, jargon, port, diagnostic
    title: str  # where it comes from, in words: "Docker: a common mix-up"
    text: str  # the course's own words, as Markdown
    concept: str | None  # the ELI5 explainer it belongs to, if any
    keywords: str = ""  # searched on their own but never shown: the myth a mix-up corrects, the analogy's name
    about: str = ""  # searched with the text and with the keywords: the concept's name

    def search_fields(self) -> list[str]:
        """The texts retrieval ranks this passage by; its score is that of the best one."""
        return [f"{self.about} {field}" for field in (self.plain_text, self.keywords) if field]

    @property
    def tab(self) -> str:
        """The tab that opens it: the explainer in ELI5, or the Ports tab for a diagnostic."""
        return "ports" if self.kind == "diagnostic" else "eli5"

    @property
    def plain_text(self) -> str:
        """The text without Markdown emphasis, as the model reads it."""
        return _EMPHASIS.sub("", self.text)

    def to_dict(self) -> dict:
        return {"id": self.id, "concept": self.concept, "title": self.title, "text": self.text, "kind": self.kind, "tab": self.tab}


def _table_rows(lines: list[str]) -> list[str]:
    """A Markdown table as one sentence per row: "Default port — Gradio: 7860; Streamlit: 8501."."""
    cells = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]
    header, rows = cells[0], [row for row in cells[2:] if any(row)]
    sentences = []
    for row in rows:
        row = [cell.rstrip(".") for cell in row]  # each row becomes one sentence with one full stop
        label = f"{header[0]} {row[0]}" if header[0] and row[0].isdigit() else row[0]
        if len(row) == 2:
            sentences.append(f"{label}: {row[1]}.")
        else:
            sentences.append(f"{label} — " + "; ".join(f"{name}: {cell}" for name, cell in zip(header[1:], row[1:])) + ".")
    return sentences


def _blocks(markdown: str) -> list[str]:
    """A section cut into the pieces a learner reads on their own: bullets, paragraphs, table rows."""
    blocks: list[str] = []
    current: list[str] = []
    table_lines: list[str] = []

    def flush() -> None:
        if current:
            blocks.append(" ".join(line.strip() for line in current).removeprefix("- "))
            current.clear()
        if table_lines:
            blocks.extend(_table_rows(table_lines))
            table_lines.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            if current:
                flush()
            table_lines.append(line)
        elif not line.strip() or line.startswith("- "):
            flush()
            if line.strip():
                current.append(line)
        else:
            if table_lines:
                flush()
            current.append(line)
    flush()
    return [block for block in blocks if not block.endswith(":")]  # a lead-in says nothing alone


def _concept_passages(concept: Concept) -> list[Passage]:
    title = concept.title
    passages = [
        Passage(f"{concept.id}/plain", "plain", f"{title}: in plain words", concept.plain, concept.id, concept.like, title),
        Passage(f"{concept.id}/analogy", "analogy", f"{title}: the analogy, {concept.like}", concept.analogy, concept.id, concept.like, title),
        # The myth is searched, so "is Docker a virtual machine?" finds the correction,
        # but never shown or handed to the model, which would repeat it.
        Passage(f"{concept.id}/mix-up", "mix-up", f"{title}: a common mix-up", concept.truth, concept.id, concept.myth, title),
    ]
    passages += [
        Passage(f"{concept.id}/technical/{number}", "technical", f"{title}: the technical words", block, concept.id, about=title)
        for number, block in enumerate(_blocks(concept.bridge), 1)
    ]
    example = f"```{concept.example_language}\n{concept.example}\n```"
    passages.append(Passage(f"{concept.id}/example", "example", f"{title}: an example", example, concept.id, about=title))
    return passages


def _mentions(text: str, term: str) -> bool:
    return re.search(rf"\b{re.escape(term)}\b", text, re.IGNORECASE) is not None


def _jargon_passages() -> list[Passage]:
    """Each jargon word with its plainer wording, linked to the first explainer that uses it."""
    texts = {cid: " ".join((get_concept(cid).plain, get_concept(cid).truth, get_concept(cid).bridge)) for cid in concepts()}
    passages = []
    for number, term in enumerate(jargon_terms(), 1):
        spellings = (term.term, *term.forms)
        home = next((cid for cid, text in texts.items() if any(_mentions(text, s) for s in spellings)), None)
        text = f"**{term.term}**: in plain words, {term.suggestion}."
        passages.append(Passage(f"jargon/{number}", "jargon", "Words to explain", text, home))
    return passages


@cache
def passages() -> tuple[Passage, ...]:
    """Every passage of the course, built once per process from the data files."""
    found = [passage for concept_id in concepts() for passage in _concept_passages(get_concept(concept_id))]
    found += [
        Passage(
            f"glossary/{number}", "glossary", f"Glossary: {entry.technical}",
            f"**{entry.everyday}** is the course's picture of **{entry.technical}**: {entry.meaning}", entry.concept,
        )  # fmt: skip
        for number, entry in enumerate(glossary_entries(), 1)
    ]
    found += _jargon_passages()
    found += [
        Passage(f"port/{port}", "port", f"Well-known ports: {row.name}", f"{describe(port)}.", "ports", about=f"port {row.name}")
        for port, row in table().items()
    ]
    found += [
        Passage(
            f"diagnostic/{code.code}", "diagnostic", f"Ports problem: {code.code}",
            f"**{code.title}** (`{code.code}`). {code.means} Fix: {code.fix}", None,
        )  # fmt: skip
        for code in diagnostic_codes().values()
    ]
    return tuple(found)
