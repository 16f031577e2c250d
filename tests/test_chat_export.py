"""A chat as Markdown and JSON: the conversation, with each reply's course notes under it."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from demos.chat_export import as_json, as_markdown, conversation, file_stem

HISTORY = [
    {"role": "user", "content": [{"type": "text", "text": "What is a container?"}]},
    {"role": "assistant", "content": "A running copy of an image."},
    {"role": "assistant", "content": "**Docker**\n\nA container is…", "metadata": {"title": "📚 From the course"}},
    {"role": "user", "content": "And Compose?\x07"},
    {"role": "assistant", "content": ""},  # a stopped reply before its first word
]
SETTINGS = ["Be brief.", 0.3, 0.9, 256, 1.15, True]
NOON = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def test_notes_go_with_the_reply_they_belong_to():
    turns = conversation(HISTORY)
    assert [(t["role"], t["content"]) for t in turns] == [
        ("user", "What is a container?"), ("assistant", "A running copy of an image."), ("user", "And Compose?")]
    assert turns[1]["notes"] == [{"title": "📚 From the course", "text": "**Docker**\n\nA container is…"}]


def test_json_holds_the_settings_and_the_stats():
    record = json.loads(as_json(HISTORY, SETTINGS, "0.20 s to first token", "SmolLM2", NOON))
    assert record["settings"] == {"system_prompt": "Be brief.", "temperature": 0.3, "top_p": 0.9, "max_new_tokens": 256,
                                  "repetition_penalty": 1.15, "grounded": True}
    assert record["model"] == "SmolLM2" and record["exported_at"] == "2026-12-07T12:00:00+00:00"
    assert record["messages"] == conversation(HISTORY)


def test_markdown_reads_as_a_conversation_with_quoted_notes():
    text = as_markdown(HISTORY, SETTINGS, "0.20 s to first token", "SmolLM2", NOON)
    assert text.startswith("# Chat with SmolLM2\n\nExported 2026-12-07 12:00 UTC.")
    assert "answered from the course" in text and "System prompt: Be brief." in text
    assert "## You\n\nWhat is a container?\n\n## Assistant\n\nA running copy of an image." in text
    assert "> **📚 From the course**\n>\n> **Docker**\n>\n> A container is…" in text
    assert text.endswith("*Latest reply: 0.20 s to first token*\n")


def test_the_file_is_named_after_the_first_question():
    assert file_stem(HISTORY) == "chat-what-is-a-container"
    assert file_stem([]) == "chat"
