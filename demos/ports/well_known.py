"""What usually listens on a port, from the table in well_known_ports.csv."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

TABLE = Path(__file__).with_name("well_known_ports.csv")


@dataclass(frozen=True)
class WellKnownPort:
    port: int
    name: str
    what: str  # completes "N is …", e.g. "Streamlit's default port"


@cache
def table() -> dict[int, WellKnownPort]:
    with TABLE.open(newline="", encoding="utf-8") as file:
        rows = [WellKnownPort(int(row["port"]), row["name"], row["what"]) for row in csv.DictReader(file)]
    return {row.port: row for row in rows}


@cache
def programs() -> dict[str, tuple[int, ...]]:
    """Each program the table names on its own ("SSH", "vLLM"; not "dev server" or "Docker API"),
    with every port whose row names it: "HTTP" has 80 and 8080, "Flask" 5000."""
    names = {name.strip() for row in table().values() for name in row.name.split("/") if " " not in name.strip()}
    return {
        name: tuple(row.port for row in table().values() if re.search(rf"\b{re.escape(name)}\b", f"{row.name} {row.what}", re.IGNORECASE))
        for name in sorted(names)
    }


def lookup(port: int) -> WellKnownPort | None:
    return table().get(port)


def describe(port: int) -> str | None:
    """'8501 is Streamlit's default port', or None for a port the table does not know."""
    known = lookup(port)
    return f"{port} is {known.what}" if known else None


def answer(port: int) -> str:
    """A full answer to "what usually listens on port N?", also for unknown ports."""
    if not 0 < port <= 65535:
        return f"{port} is not a port: ports go from 1 to 65535."
    known = describe(port)
    if known:
        return known + "."
    if port < 1024:
        return f"{port} is a system port (below 1024); the table has no common program for it."
    if 30000 <= port <= 32767:
        return f"{port} is in the range Kubernetes uses for NodePort Services (30000–32767)."
    if port >= 32768:
        return f"{port} is in the range operating systems hand out for temporary connections; Docker's random host ports come from here."
    return f"Nothing well known listens on {port}: it is free for your own programs."
