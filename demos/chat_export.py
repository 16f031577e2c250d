"""A chat as files a person keeps: Markdown to read, JSON to load elsewhere. No Gradio here.

The chat window's history holds the conversation and, after a reply, the
bubbles the app added (the course's passages, a "not from the course" note);
those go with the reply they belong to, not into the conversation.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from demos.chat_logic import clean, content_text

SETTING_NAMES = ("system_prompt", "temperature", "top_p", "max_new_tokens", "repetition_penalty", "grounded")
SPEAKERS = {"user": "You", "assistant": "Assistant"}


def conversation(history) -> list[dict]:
    """[{"role", "content", "notes": [{"title", "text"}]}]: each added bubble under the reply before it."""
    turns: list[dict] = []
    for message in history or []:
        if not isinstance(message, dict):
            continue
        text = clean(content_text(message.get("content")))
        title = (message.get("metadata") or {}).get("title")
        if title:
            if turns:
                turns[-1]["notes"].append({"title": title, "text": text})
        elif message.get("role") in SPEAKERS and text.strip():
            turns.append({"role": message["role"], "content": text, "notes": []})
    return turns


def as_json(history, settings: list, stats: str, model: str, now: datetime | None = None) -> str:
    """The conversation with the settings it was had with, the model and the latest reply's stats."""
    record = {
        "exported_at": (now or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
        "model": model,
        "settings": dict(zip(SETTING_NAMES, settings)),
        "latest_stats": stats,
        "messages": conversation(history),
    }
    return json.dumps(record, indent=2, ensure_ascii=False)


def as_markdown(history, settings: list, stats: str, model: str, now: datetime | None = None) -> str:
    named = dict(zip(SETTING_NAMES, settings))
    when = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# Chat with {model}", "", f"Exported {when}. Temperature {named.get('temperature')}, top-p "
             f"{named.get('top_p')}, repetition penalty {named.get('repetition_penalty')}, "
             f"{'answered from the course' if named.get('grounded') else 'the plain model'}."]
    if named.get("system_prompt"):
        lines += ["", f"System prompt: {named['system_prompt']}"]
    for turn in conversation(history):
        lines += ["", f"## {SPEAKERS[turn['role']]}", "", turn["content"]]
        for note in turn["notes"]:
            lines += ["", f"> **{note['title']}**", ">", *[f"> {line}" if line else ">" for line in note["text"].splitlines()]]
    if stats:
        lines += ["", f"*Latest reply: {stats}*"]
    return "\n".join(lines) + "\n"


def file_stem(history) -> str:
    """A file name from the first question: chat-what-is-a-container."""
    first = next((turn["content"] for turn in conversation(history) if turn["role"] == "user"), "")
    words = "".join(ch if ch.isalnum() else " " for ch in first.lower()).split()[:6]
    return "-".join(["chat", *words]) or "chat"
