"""Finding the course's phrasings in free text, and whether the text affirms or denies them.

Shared by the explain-it-back checker (a learner's key ideas and myths) and
the chat (a model reply that repeats a myth). Deterministic and linear in the
text's length: each clause is searched once per set of phrasings.

A phrasing is affirmed unless its clause holds an odd number of negations
before it: "it is not a box" denies "box", "it is not true that it does not
run anywhere" affirms "anywhere". A clause about what might happen, or
happens without the thing ("without Docker it may not run elsewhere"), is
hypothetical: it neither affirms nor denies. Clauses end at sentence
punctuation, commas, semicolons, contrast words, "until" and an "and" that
starts a new subject, so "it is not a virtual machine, it shares the kernel"
affirms "shares the kernel"; but a condition that takes the thing away
("Without Docker, …", "If you didn't have it, …") stays with the clause it
frames. The last phrasing in a clause reads it, with every negation before
it in scope.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache

_NOT_A_WORD_CHARACTER = re.compile(r"[^a-z0-9]+")
# Where a clause ends: a negation before it no longer reaches what follows.
# A dot, colon or comma before a digit ends none: 127.0.0.1 and 8080:80 are one number each.
# "and" ends one only before a new subject: "it is not for many computers and it does not restart…" is two.
_CLAUSE_END = re.compile(
    r"(?:[!?;()\n]|[.:,](?!\d))+|\s[-–—]+\s|\b(?:but|however|yet|instead|whereas|although|though|rather|so)\b"
    # "until" ends a clause ("it isn't reachable until you publish it"), except where it says what is waited for.
    r"|(?<!wait )(?<!waits )(?<!waited )\buntil\b"
    r"|\band (?=(?:it|they|you|we|he|she|there|the|this|that|its|their|your|a|an)\b)",
    re.IGNORECASE,
)
# Negations, in normalised text: "isn't" is "isn t" there.
# "not just", "not only": a negation that adds to the idea rather than denying it.
_NEGATION = re.compile(r"\b(?:not|no|never|nothing|neither|nor|without|cannot|none|nobody|nowhere|hardly|[a-z]+n t)\b(?! (?:just|only|merely|simply)\b)")
# Words in a phrasing's "..." gap that make it a comparison, not a statement:
# "a container is lighter than a virtual machine" does not say it is one.
_COMPARISON = frozenset({"than", "unlike", "compared", "versus", "vs", "different", "differs", "separate", "apart"})

# A clause about what happens without the thing, or might happen: its negations
# describe the problem ("without Docker it may not run elsewhere"), not a denial.
_WITHOUT = r"without (?:it|them|docker|containers?|compose|kubernetes|the cloud)"
_HYPOTHETICAL = re.compile(rf"\b(?:if|unless|otherwise|(?:would|might|could)(?:n t)?|may|before|{_WITHOUT})\b")

# "..." in a phrasing stands for one to three words, so "set ... up again" matches
# "set them up again" and "set it all up again".
_A_FEW_WORDS = "[a-z0-9]+(?: [a-z0-9]+){0,2}"


def normalise(text: str) -> str:
    """Lower case, with every run of punctuation or spacing turned into one space."""
    return _NOT_A_WORD_CHARACTER.sub(" ", text.lower()).strip()


# The checker and the guard search one text for several sets of phrasings in a row.
_normalised = lru_cache(maxsize=8)(normalise)


def _word_pattern(word: str) -> str:
    """One word of a phrasing as regex; a trailing * allows any ending."""
    if word == "...":
        return _A_FEW_WORDS
    # Normalised words hold only letters, digits and spaces, so they need no escaping.
    return normalise(word) + ("[a-z0-9]*" if word.endswith("*") else "")


def _alternatives(phrasings: tuple[str, ...]) -> str:
    """A regex alternation of the phrasings."""
    return "|".join(" ".join(map(_word_pattern, phrasing.split())) for phrasing in phrasings)


@cache
def phrases_pattern(phrasings: tuple[str, ...]) -> re.Pattern[str]:
    """One regex for all the phrasings, matched at word boundaries in normalised text."""
    return re.compile(rf"\b(?:{_alternatives(phrasings)})\b")


@dataclass(frozen=True)
class Found:
    clause: str  # the clause as written, trimmed
    affirmed: bool  # no negation before the phrasing, or two
    hypothetical: bool  # "if…", "without Docker…": neither an affirmation nor a denial of how things are

    @property
    def denied(self) -> bool:
        return not self.affirmed and not self.hypothetical

    @property
    def stated(self) -> bool:
        """Said as how things are: affirmed, and not as a condition."""
        return self.affirmed and not self.hypothetical


@cache
def _phrasing_patterns(phrasings: tuple[str, ...]) -> tuple[tuple[re.Pattern[str], int], ...]:
    """Each phrasing on its own, with the negations it holds itself ("no setup", "without install*")."""
    return tuple((phrases_pattern((p,)), len(_NEGATION.findall(normalise(p.replace("...", " "))))) for p in phrasings)


def _negations_in_match(words: str, match: re.Match[str], phrasings: tuple[str, ...]) -> int:
    """Negations before the match and in its gaps ("a container is not a VM"), not those the phrasing says itself."""
    own = next(n for pattern, n in _phrasing_patterns(phrasings) if pattern.match(words, match.start()))
    return len(_NEGATION.findall(words[: match.end()])) - own


def _compares(matched: str, phrasings: tuple[str, ...]) -> bool:
    """Whether words that the "..." gaps filled in make the match a comparison."""
    return bool((set(matched.split()) - _phrasing_words(phrasings)) & _COMPARISON)


@cache
def _phrasing_words(phrasings: tuple[str, ...]) -> frozenset[str]:
    return frozenset(normalise(" ".join(phrasings)).split())


# An opening condition that takes the thing away ("Without Docker, …", "If you didn't have it, …")
# frames the clause after it, which describes the problem rather than denying an idea.
_TAKES_AWAY = re.compile(rf"^(?:{_WITHOUT}\b|(?:if|unless)\b.*\b(?:not|no|never|[a-z]+n t)\b)")


def clauses(text: str) -> list[str]:
    parts = [part.strip() for part in _CLAUSE_END.split(text) if part and part.strip()]
    joined: list[str] = []
    condition = False  # whether the last clause is such a condition, still waiting for what it frames
    for part in parts:
        if condition:
            joined[-1] = f"{joined[-1]} {part}"
            condition = False
        else:
            joined.append(part)
            condition = bool(_TAKES_AWAY.match(normalise(part)))
    return joined


def find(text: str, phrasings: tuple[str, ...]) -> list[Found]:
    """Every clause of `text` that holds one of the phrasings, and whether it affirms it."""
    pattern = phrases_pattern(phrasings) if phrasings else None
    # One search of the whole text rules most sets of phrasings out before any clause is read:
    # a clause's words are a run of the text's.
    if pattern is None or not pattern.search(_normalised(text)):
        return []
    found = []
    for clause in clauses(text):
        words = normalise(clause)
        # The last match reads the clause: every negation before it is in scope ("the address does not find the right computer").
        match = next((m for m in reversed(list(pattern.finditer(words))) if not _compares(m.group(), phrasings)), None)
        if match:
            negations = _negations_in_match(words, match, phrasings)
            # Only a condition that comes first frames the idea: "if it were a VM, …", not "… before it counts".
            found.append(Found(clause, affirmed=negations % 2 == 0, hypothetical=bool(_HYPOTHETICAL.search(words[: match.start()]))))
    return found


def negates(text: str) -> bool:
    """Whether any negation is in the text ("not", "isn't", "never"…)."""
    return bool(_NEGATION.search(normalise(text)))


def stated(text: str, phrasings: tuple[str, ...]) -> Found | None:
    """The first clause of `text` that states one of the phrasings as how things are."""
    return next((found for found in find(text, phrasings) if found.stated), None)
