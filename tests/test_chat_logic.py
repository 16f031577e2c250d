"""The Chat tab's pure logic: history, cleaning, trimming and the stats line."""

from __future__ import annotations

import pytest

from demos.chat_logic import (
    MAX_MESSAGE_CHARS,
    check_message,
    clean,
    content_text,
    fit_to_context,
    normalize_history,
    stats_line,
)
from model_runtime import Stats


def test_history_from_the_browser_and_from_gradio_client_look_the_same():
    browser = [
        {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
        {"role": "assistant", "content": "", "metadata": {"title": "A notice"}},
    ]
    client = [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"}]
    assert normalize_history(browser) == normalize_history(client) == client


def test_file_blocks_carry_no_text():
    assert content_text([{"type": "file", "file": {"path": "x.png"}}, {"type": "text", "text": "look"}]) == "look"


def test_clean_drops_control_characters_and_lone_surrogates():
    assert clean("a\x00b\x1bc\nd\te\udcff") == "abc\nd\te?"


@pytest.mark.parametrize("message", ["", "   \n\t", "\x00\x01"])
def test_empty_messages_are_refused(message):
    with pytest.raises(ValueError, match="empty"):
        check_message(message)


def test_huge_messages_are_refused_before_tokenizing():
    with pytest.raises(ValueError, match="at most"):
        check_message("x" * (MAX_MESSAGE_CHARS + 1))


def words(messages):
    """A stand-in token counter: one token per word plus two per message."""
    return sum(len(m["content"].split()) + 2 for m in messages)


def test_old_turns_are_dropped_whole_to_fit():
    history = []
    for i in range(5):
        history += [{"role": "user", "content": f"question {i} " * 5}, {"role": "assistant", "content": f"answer {i} " * 5}]
    prompt = fit_to_context("Be kind.", history, "newest question", words, budget=60)
    assert prompt.messages[0] == {"role": "system", "content": "Be kind."}
    assert prompt.messages[1]["role"] == "user"
    assert prompt.messages[-1] == {"role": "user", "content": "newest question"}
    assert words(prompt.messages) <= 60
    assert prompt.dropped_turns == len(history) - (len(prompt.messages) - 2)
    assert prompt.dropped_turns > 0 and prompt.dropped_turns % 2 == 0


def test_nothing_is_dropped_when_it_fits():
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    prompt = fit_to_context("", history, "and you?", words, budget=100)
    assert prompt.dropped_turns == 0 and prompt.messages == history + [{"role": "user", "content": "and you?"}]


def test_a_message_too_long_on_its_own_is_refused():
    with pytest.raises(ValueError, match="too long for the model's context window: it takes 52 tokens"):
        fit_to_context("", [], "word " * 50, words, budget=10)


def test_a_long_message_within_the_limit_takes_room_from_the_reply():
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    prompt = fit_to_context("", history, "word " * 50, words, budget=40, limit=60)
    assert prompt.messages == [{"role": "user", "content": "word " * 50}] and prompt.dropped_turns == 2
    with pytest.raises(ValueError, match="at most 50 fit"):
        fit_to_context("", history, "word " * 50, words, budget=40, limit=50)


def test_stats_line_reads_well():
    line = stats_line(Stats(12, 30, 0.25, 41.5, "length"))
    assert line == "0.25 s to first token · 41.5 tokens/s · 12 tokens in, 30 out · stopped at the token limit"
    assert "failed: boom" in stats_line(Stats(3, 0, None, None, "error", "boom"))
