"""What the Chat tab does to a conversation before and after the model sees it.

No Gradio here: history normalising, input cleaning, trimming to the context
window, and the stats line, so they can be tested and reused on their own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_SYSTEM_PROMPT = (
    "You are a friendly assistant in a playground for learning containers and deployment. "
    "Answer clearly and briefly."
)
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
    kept = list(history)
    while kept and count_tokens(head + kept + tail) > budget:
        # Drop whole exchanges so the conversation still starts with a user turn.
        kept = kept[2:] if len(kept) > 1 and kept[1]["role"] == "assistant" else kept[1:]
    return Prompt(head + kept + tail, len(history) - len(kept))


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
