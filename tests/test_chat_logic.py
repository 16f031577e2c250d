"""The Chat tab's pure logic: history, cleaning, trimming, the course's notes in the prompt and the stats line."""

from __future__ import annotations

import pytest

from demos.chat_logic import (
    MAX_MESSAGE_CHARS,
    NOTES_TOKENS,
    build_prompt,
    check_message,
    clean,
    content_text,
    fit_to_context,
    normalize_history,
    stats_line,
)
from demos.course.knowledge import Passage
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


def test_the_whole_conversation_is_templated_once_more_however_many_turns_give_way():
    history = history_of(20)
    long_calls = []

    def counting(messages):
        if len(messages) > 3:  # more than a system prompt, an old turn and the newest message
            long_calls.append(len(messages))
        return words(messages)

    prompt = fit_to_context("Be kind.", history, "newest question", counting, budget=60)
    assert prompt.messages == fit_to_context("Be kind.", history, "newest question", words, budget=60).messages
    assert len(long_calls) == 2, "once as it came, once as trimmed"
    kept = prompt.messages[1:-1]
    one_more = prompt.messages[:1] + history[-len(kept) - 2:] + prompt.messages[-1:]
    assert words(prompt.messages) <= 60 < words(one_more), "no more was dropped than needed"


def test_a_template_that_does_not_add_up_turn_by_turn_still_gets_an_exact_fit():
    def dated(messages):  # a line that long conversations carry, which no single turn shows
        return words(messages) + (15 if len(messages) > 4 else 0)

    history = history_of(6)
    prompt = fit_to_context("", history, "newest question", dated, budget=60)
    assert dated(prompt.messages) <= 60
    kept = len(prompt.messages) - 1
    assert dated(history[-kept - 2:] + prompt.messages[-1:]) > 60, "no more was dropped than needed"


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


def note(number: int, length: int = 10) -> Passage:
    return Passage(f"note/{number}", "plain", f"Note {number}", f"fact{number} " * length, concept=None)


def history_of(turns: int) -> list[dict]:
    history = []
    for i in range(turns):
        history += [{"role": "user", "content": f"question {i} " * 5}, {"role": "assistant", "content": f"answer {i} " * 5}]
    return history


def test_the_notes_ride_in_the_newest_turn_after_a_stable_history():
    history = history_of(2)
    prompt = build_prompt("Be kind.", history, "what is it?", [note(1), note(2)], words, budget=500)
    assert prompt.messages[:-1] == [{"role": "system", "content": "Be kind."}, *history]
    newest = prompt.messages[-1]["content"]
    assert "fact1" in newest and "fact2" in newest and newest.endswith("what is it?")
    assert prompt.passages == [note(1), note(2)] and prompt.dropped_turns == 0
    # The next turn's prompt starts with this one's history unchanged, for prefix reuse.
    later = build_prompt("Be kind.", history + [{"role": "user", "content": "what is it?"}, {"role": "assistant", "content": "x"}],
                         "and then?", [note(3)], words, budget=500)  # fmt: skip
    assert later.messages[: len(history) + 1] == prompt.messages[:-1]


def test_old_turns_give_way_to_the_notes_and_the_notice_counts_them():
    history = history_of(5)
    bare = build_prompt("", history, "newest", [], words, budget=80)
    grounded = build_prompt("", history, "newest", [note(1, 20)], words, budget=80)
    assert grounded.passages == [note(1, 20)]
    assert grounded.dropped_turns > bare.dropped_turns
    assert words(grounded.messages) <= 80
    assert grounded.dropped_turns == len(history) - (len(grounded.messages) - 1)


def test_notes_stop_at_their_own_budget():
    many = [note(i, 60) for i in range(10)]
    prompt = build_prompt("", [], "q", many, words, budget=10_000)
    assert 0 < len(prompt.passages) < len(many)
    assert prompt.passages == many[: len(prompt.passages)], "the best notes are kept, in rank order"
    assert words([{"role": "user", "content": "\n".join(p.text for p in prompt.passages)}]) <= NOTES_TOKENS
    # A note too long for what is left makes way for a shorter one after it.
    assert build_prompt("", [], "q", [note(1, 400), note(2)], words, budget=10_000).passages == [note(2)]
    # On a small context the notes take at most half of it.
    assert words([{"role": "user", "content": "\n".join(p.text for p in build_prompt("", [], "q", many, words, budget=200).passages)}]) <= 100


def test_a_long_message_keeps_its_room_and_loses_notes_before_it_is_refused():
    message = "word " * 50
    prompt = build_prompt("", history_of(2), message, [note(1), note(2)], words, budget=80)
    assert prompt.messages[-1]["content"].endswith(message) and prompt.dropped_turns == 4
    assert prompt.passages == [note(1)], "the lower-ranked note goes first"
    alone = build_prompt("", [], message, [note(1)], words, budget=60)
    assert alone.passages == [] and alone.messages == [{"role": "user", "content": message}]
    with pytest.raises(ValueError, match="too long"):
        build_prompt("", [], message, [note(1)], words, budget=10)


def test_stats_line_reads_well():
    line = stats_line(Stats(12, 30, 0.25, 41.5, "length"))
    assert line == "0.25 s to first token · 41.5 tokens/s · 12 tokens in, 30 out · stopped at the token limit"
    assert "failed: boom" in stats_line(Stats(3, 0, None, None, "error", "boom"))
