"""Which passages of the course answer a chat message, or that none does.

Ranking is BM25 from bm25s (see docs/GROUNDING.md for why that library):
no scoring code lives here, only the words it ranks on. Words are
lower-cased, stemmed (PyStemmer's Snowball English), abbreviations such as
k8s are spelled out, and a misspelt word is replaced by the closest word the
course uses. The newest message counts fully and the learner's previous
message at half weight, so "and what about Compose?" still finds Compose and
"why?" still finds what the last question was about.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import cache

import bm25s
import numpy as np
import Stemmer
from bm25s.stopwords import STOPWORDS_EN_PLUS

from demos.eli5.content import spelled_out_words

from .knowledge import Passage, passages

# Words of a chat message that say nothing about which passage it wants.
STOPWORDS = frozenset(STOPWORDS_EN_PLUS) | {
    "tell", "explain", "please", "thanks", "thank", "hi", "hello", "hey", "know", "want", "mean", "means",
    "meant", "really", "also", "would", "could", "let", "say", "actually", "something", "thing", "things",
    "us", "ok", "okay", "yes", "yeah", "sure", "can", "may", "might", "must", "shall", "get", "got",
    "whats", "hows", "whos", "much", "many", "one", "way", "ways", "work", "works", "use", "used", "using", "like",
    "different", "differ", "differs", "difference", "differences", "differently",  # every mix-up passage says it
}  # fmt: skip
MAX_QUERY_WORDS = 256  # a 16,000-character message is ranked on its first distinct words, in bounded time
MAX_CORRECTIONS = 8  # misspelt words looked up per message
MIN_COVERAGE = 0.5  # the share of a message's words the course must use for the message to be on its topic
KEEP_WITHIN = 0.6  # further passages are kept while they score at least this share of the best
CONTEXT_WEIGHT = 0.5  # the learner's previous message, so follow-ups keep their topic
TOP_K = 3

_WORD = re.compile(r"[a-z0-9]+")
_STEMMER = Stemmer.Stemmer("english")


def content_words(text: str, limit: int | None = None) -> list[str]:
    """The distinct words of the text that may say what it is about; at most `limit` of them are read."""
    words: dict[str, None] = {}
    for word in spelled_out_words(text):
        if word not in STOPWORDS:
            words[word] = None
            if limit is not None and len(words) >= limit:
                break
    return list(words)


def stems(text: str) -> list[str]:
    """The stems of the text's content words, as retrieval ranks them."""
    return _STEMMER.stemWords(content_words(text))


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float


class CourseIndex:
    def __init__(self, corpus: tuple[Passage, ...]) -> None:
        self.passages = corpus
        # A passage's keywords (a myth, an analogy's name) are a document of their own, so
        # that a long passage is not outranked by a short one that merely shares a word.
        documents, self._owner = [], []
        for number, passage in enumerate(corpus):
            for field in passage.search_fields():
                documents.append(stems(field))
                self._owner.append(number)
        self._owner = np.array(self._owner)
        self._retriever = bm25s.BM25()
        self._retriever.index(documents, show_progress=False)
        self._vocabulary = set(self._retriever.vocab_dict)
        # Each explainer's name, as stems, and its plain words: "what is a port?" wants those first.
        self._names = sorted(
            ((frozenset(stems(p.about)), number) for number, p in enumerate(corpus) if p.kind == "plain"),
            key=lambda name: len(name[0]),
        )
        surface = {word for p in corpus for word in _WORD.findall(f"{p.title} {p.keywords} {p.text}".lower())}
        self._spellings: dict[tuple[str, int], list[str]] = {}
        for word in sorted(surface - STOPWORDS):
            self._spellings.setdefault((word[0], len(word)), []).append(word)

    def _correct(self, word: str) -> str | None:
        """The course's word nearest to a misspelt one: same first letter, one letter longer or shorter at most."""
        if len(word) < 5:
            return None  # too short to tell a typo from another word
        candidates = [c for size in (-1, 0, 1) for c in self._spellings.get((word[0], len(word) + size), ())]
        near = difflib.get_close_matches(word, candidates, n=1, cutoff=0.8)
        return near[0] if near else None

    def _query(self, text: str) -> tuple[list[str], float]:
        """The message's stems that the course uses, and what share of its words they are.

        A misspelt word counts as the course's word nearest to it.
        """
        words = content_words(text, MAX_QUERY_WORDS)
        stems, corrections = [], 0
        for word in words:
            stem = _STEMMER.stemWord(word)
            if stem not in self._vocabulary and corrections < MAX_CORRECTIONS:
                corrections += 1
                near = self._correct(word)
                stem = _STEMMER.stemWord(near) if near else stem
            if stem in self._vocabulary:
                stems.append(stem)
        return stems, len(stems) / len(words) if words else 0.0

    def _scores(self, query: tuple[list[str], float]) -> np.ndarray | None:
        """Each passage's score for a _query(); None when its text uses too few of the course's words."""
        stems, coverage = query
        if not stems or coverage < MIN_COVERAGE:
            return None
        scores = np.zeros(len(self.passages))
        np.maximum.at(scores, self._owner, self._retriever.get_scores(stems))
        return scores

    def search(self, message: str, earlier: str = "", k: int = TOP_K) -> list[Hit]:
        """The passages that answer `message`, best first; [] when the course does not cover it.

        `earlier` is the learner's previous message. A message with no word at
        all that might say what it is about ("why?", "go on") is read as a
        follow-up to it; one about something else is off-topic, whatever came
        before.
        """
        asked = self._query(message)
        own = self._scores(asked)
        if own is None and not content_words(message) and earlier:
            own = self._scores(self._query(earlier))
        elif own is not None and earlier:
            context = self._scores(self._query(earlier))
            own = own if context is None else own + CONTEXT_WEIGHT * context
        if own is None or own.max() <= 0:
            return []
        named = self._named_explainer(set(asked[0]))
        if named is not None:
            own[named] = own.max() * 1.01  # a question that only names an explainer gets its plain words first
        best = np.argsort(-own, kind="stable")[:k]
        top = own[best[0]]
        return [Hit(self.passages[i], float(own[i])) for i in best if own[i] >= KEEP_WITHIN * top]

    def _named_explainer(self, asked: set[str]) -> int | None:
        """The plain passage of the explainer whose name holds every stem the message asks with, the shortest name first."""
        return next((number for name, number in self._names if asked and asked <= name), None)


@cache
def course_index() -> CourseIndex:
    """The index of every passage, built once per process (well under a second)."""
    return CourseIndex(passages())
