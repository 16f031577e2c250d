"""What each diagnostic code means and how to fix it, from diagnostic_codes.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

CODES_FILE = Path(__file__).with_name("diagnostic_codes.yaml")


@dataclass(frozen=True)
class DiagnosticCode:
    code: str
    title: str
    means: str
    fix: str


@cache
def diagnostic_codes() -> dict[str, DiagnosticCode]:
    data = yaml.safe_load(CODES_FILE.read_text(encoding="utf-8"))
    return {
        code: DiagnosticCode(code, entry["title"].strip(), entry["means"].strip(), entry["fix"].strip())
        for code, entry in data.items()
    }


def codes_markdown() -> str:
    """Every code as a short paragraph, for the Ports tab."""
    return "\n\n".join(
        f"`{entry.code}`: **{entry.title}.** {entry.means} *Fix:* {entry.fix}" for entry in diagnostic_codes().values()
    )
