"""The bench's grounded rows: the conversation file matches the course, and the rows replay it as the chat would.

Speed itself is the bench's to measure (python -m model_runtime.bench), not a test's.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from model_runtime import bench

ROOT = Path(__file__).resolve().parents[1]


def bench_prompts():
    spec = importlib.util.spec_from_file_location("bench_prompts", ROOT / "scripts" / "bench_prompts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_conversation_file_is_the_course_as_the_chat_would_send_it_today():
    prompts = bench_prompts()
    saved = json.loads(bench.CONVERSATION.read_text(encoding="utf-8"))
    assert saved == prompts.conversation(prompts.embedded_token_counter()), "run python scripts/bench_prompts.py"
    assert len(saved["turns"]) == 5
    for turn in saved["turns"]:
        assert turn["notes"] and turn["message"].startswith("Course notes:")
        assert turn["message"].endswith(f"Question: {turn['question']}")


class Recorder:
    """A contender that answers instantly and remembers what it was sent."""

    name = "recorder"

    def __init__(self):
        self.sent = []

    def chat(self, messages, new_tokens):
        self.sent.append(messages)
        return f"reply {len(self.sent)}", 0.1 * len(messages)

    def prefill(self, messages):
        return 0.5


def test_the_conversation_row_sends_each_question_with_its_notes_and_the_replies():
    recorder = Recorder()
    ttfts = bench.conversation_row([recorder], rounds=2, new_tokens=8)
    script = json.loads(bench.CONVERSATION.read_text(encoding="utf-8"))
    fifth = recorder.sent[4]
    assert fifth[0]["content"] == f"Round 1. {script['system']}"
    assert fifth[-1]["content"] == script["turns"][4]["message"]
    assert [m["content"] for m in fifth[1:-1:2]] == [t["message"] for t in script["turns"][:4]]
    assert [m["content"] for m in fifth[2:-1:2]] == ["reply 1", "reply 2", "reply 3", "reply 4"]
    assert recorder.sent[5][0]["content"].startswith("Round 2.")
    assert ttfts["recorder"] == [0.1 * (2 + 2 * i) for i in range(5)]


def test_prefill_prompts_have_the_lengths_asked_for():
    def words(messages):
        return sum(len(m["content"].split()) + 3 for m in messages)

    for tokens in bench.PREFILL_LENGTHS:
        assert tokens - 1 <= words(bench.prompt_of(tokens, words)) <= tokens
    rates = bench.prefill_row([Recorder()], words, rounds=1)["recorder"]
    assert set(rates) == set(bench.PREFILL_LENGTHS) and all(rate > 0 for rate in rates.values())


class Drafting:
    """An engine-like contender: replies instantly, keeps half of four drafted tokens, runs streams."""

    name = "drafting"
    engine = None  # what marks an engine: the row runs it with 8 streams too

    def __init__(self):
        self.sent, self.together = [], []

    def reply(self, messages, new_tokens):
        self.sent.append(messages)
        return bench.Reply(0.2, 100.0 + len(self.sent), drafted=4, accepted=2)

    def aggregate(self, streams, new_tokens, prompts):
        self.together.append((streams, prompts))
        return 300.0


def test_the_grounded_row_asks_each_question_with_its_notes_on_a_cache_of_its_own():
    drafting, peer = Drafting(), Recorder()
    peer.reply = lambda messages, new_tokens: bench.Reply(0.4, 50.0)
    row = bench.grounded_row([drafting, peer], rounds=2, new_tokens=8)
    script = json.loads(bench.CONVERSATION.read_text(encoding="utf-8"))
    assert [m[-1]["content"] for m in drafting.sent] == [t["message"] for t in script["turns"]] * 2
    openings = [m[0]["content"] for m in drafting.sent] + [m[0]["content"] for _, p in drafting.together for m in p]
    assert len(set(openings)) == len(openings) and all(o.endswith(script["system"]) for o in openings)
    assert [streams for streams, _ in drafting.together] == [8, 8]
    assert row["drafting"] == {"decode_tokens_per_s": 105.5, "time_to_first_token_s": 0.2, "acceptance": 0.5,
                               "aggregate_8_streams_tokens_per_s": 300.0}
    assert row["recorder"]["acceptance"] is None and row["recorder"]["aggregate_8_streams_tokens_per_s"] is None
