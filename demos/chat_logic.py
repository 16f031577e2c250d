"""What the Chat tab does to a conversation before and after the model sees it.

No Gradio here: history normalising, input cleaning, the course's notes in
the prompt, trimming to the context window, and the stats line, so they can
be tested and reused on their own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from demos.course.knowledge import Passage

DEFAULT_SYSTEM_PROMPT = (
    "You are a friendly assistant in a playground for learning containers and deployment. "
    "Answer clearly and briefly."
)
# The sampling every tab asks the model with, unless a visitor changes it.
# Chosen on scripts/chat_eval_questions.yaml (docs/GROUNDING.md): the repetition
# penalty stops the small model's loops ("lightweight, lightweight, …").
SAMPLING_DEFAULTS = {"temperature": 0.3, "top_p": 0.9, "repetition_penalty": 1.15}
DEFAULT_MAX_NEW_TOKENS = 256
NOTES_TOKENS = 320  # the most of the context the course's notes take, so the first token stays quick
MAX_MESSAGE_CHARS = 16_000  # far more than the default model's context; refuse before tokenizing
MIN_REPLY_TOKENS = 32  # a prompt that leaves less room than this in the context is refused
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def content_text(content) -> str:
    """Message content as plain text.

    The browser sends content as a list of blocks ({"type": "text", "text": ...}),
    gradio_client as a plain string; files and other blocks carry no text.
    """
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return content.get("text") or "" if content.get("type", "text") == "text" else ""
    if isinstance(content, (list, tuple)):
        return "".join(content_text(block) for block in content)
    return ""


def clean(text: str) -> str:
    """Drop control characters and lone surrogates (what invalid UTF-8 becomes)."""
    text = text.encode("utf-8", errors="replace").decode("utf-8")
    return _CONTROL.sub("", text)


def normalize_history(history) -> list[dict]:
    """Gradio's chat history as [{"role", "content": str}], notices and empty turns left out."""
    messages = []
    for message in history or []:
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            continue
        if (message.get("metadata") or {}).get("title"):
            continue  # a notice shown in the chat, not part of the conversation
        text = clean(content_text(message.get("content")))
        if text.strip():
            messages.append({"role": message["role"], "content": text})
    return messages


def check_message(message: str) -> str:
    """The user's message, cleaned; a ValueError says plainly what is wrong with it."""
    text = clean(content_text(message))
    if not text.strip():
        raise ValueError("Type a message first: this one is empty.")
    if len(text) > MAX_MESSAGE_CHARS:
        raise ValueError(
            f"That message is {len(text):,} characters long; the chat takes at most "
            f"{MAX_MESSAGE_CHARS:,}. Paste a shorter piece."
        )
    return text


@dataclass
class Prompt:
    messages: list[dict]
    dropped_turns: int  # old messages left out to fit the context window
    passages: list["Passage"] = field(default_factory=list)  # the course's notes the newest turn carries


def fit_to_context(system_prompt: str, history: list[dict], message: str, count_tokens, budget: int, limit: int | None = None) -> Prompt:
    """Drop the oldest turns until the conversation fits `budget` tokens.

    The system prompt and the newest message always stay. When they alone
    pass `budget` but not `limit` (the context less the shortest reply worth
    having), the reply gets what room is left; past `limit`, ValueError says so.
    """
    head = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    tail = [{"role": "user", "content": message}]
    needed, most = count_tokens(head + tail), budget if limit is None else limit
    if needed > most:
        raise ValueError(
            f"That message is too long for the model's context window: it takes {needed:,} tokens, "
            f"with the history left out, and at most {most:,} fit. Shorten it."
        )
    kept, total = list(history), count_tokens(head + history + tail)
    if total > budget:
        # Each old turn's share of the count, measured beside the newest message alone: the
        # whole conversation is not templated again for every turn that gives way.
        shares = [count_tokens(head + [turn] + tail) - needed for turn in history]
        while kept and total > budget:
            # Drop whole exchanges so the conversation still starts with a user turn.
            n = 2 if len(kept) > 1 and kept[1]["role"] == "assistant" else 1
            total -= sum(shares[len(history) - len(kept):][:n])
            kept = kept[n:]
        # Templates that do not render each turn on its own (a date line, a system prompt folded
        # into the first turn) can make the shares a little off: the exact count has the last word.
        while kept and count_tokens(head + kept + tail) > budget:
            kept = kept[2:] if len(kept) > 1 and kept[1]["role"] == "assistant" else kept[1:]
    return Prompt(head + kept + tail, len(history) - len(kept))


# A small model that has answered sometimes writes the next turn itself ("Question: Does …"),
# in the grounded turn's own format: the reply ends there.
GROUNDED_STOPS = ["\nQuestion:", "\nCourse notes:"]


def grounded_turn(message: str, passages: list["Passage"]) -> str:
    """The newest user turn with the course's notes before the question.

    The notes ride in this turn rather than the system prompt, so that every
    earlier turn stays a stable prefix of the next prompt.
    """
    if not passages:
        return message
    notes = "\n".join(f"- {passage.plain_text}" for passage in passages)
    return f"Course notes:\n{notes}\n\nAnswer with the facts in the course notes.\nQuestion: {message}"


def notes_that_fit(passages: list["Passage"], count_tokens, budget: int) -> list["Passage"]:
    """The passages, best first, while their notes fit NOTES_TOKENS (half the budget on a small context)."""
    room, kept = min(NOTES_TOKENS, budget // 2), []
    for passage in passages:
        if count_tokens([{"role": "user", "content": grounded_turn("", [*kept, passage])}]) <= room:
            kept.append(passage)
    return kept


def build_prompt(system_prompt: str, history: list[dict], message: str, passages: list["Passage"], count_tokens, budget: int, limit: int | None = None) -> Prompt:
    """The conversation the model reads: old turns give way first, then the notes, then it is refused.

    Notes are kept, best first, while they fit NOTES_TOKENS (half the budget
    on a small context); the history is trimmed to make room for them and the
    newest message. Only when the message alone leaves no room for a note are
    the notes dropped, the lowest-ranked first.
    """
    kept = notes_that_fit(passages, count_tokens, budget)
    while True:
        try:
            prompt = fit_to_context(system_prompt, history, grounded_turn(message, kept), count_tokens, budget, limit)
        except ValueError:
            if not kept:
                raise
            kept.pop()
            continue
        prompt.passages = kept
        return prompt


def stats_line(stats) -> str:
    parts = []
    if stats.time_to_first_token_s is not None:
        parts.append(f"{stats.time_to_first_token_s:.2f} s to first token")
    if stats.decode_tokens_per_s is not None:
        parts.append(f"{stats.decode_tokens_per_s:.1f} tokens/s")
    parts.append(f"{stats.prompt_tokens} tokens in, {stats.completion_tokens} out")
    endings = {"length": "stopped at the token limit", "cancelled": "stopped", "error": f"failed: {stats.error}"}
    if stats.finish_reason in endings:
        parts.append(endings[stats.finish_reason])
    return " · ".join(parts)
