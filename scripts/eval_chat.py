"""How often the Chat tab answers learners right: the bare model against the grounded chat.

    python scripts/eval_chat.py                 # retrieval, then replies on the embedded model
    python scripts/eval_chat.py --retrieval     # retrieval only, in a second
    python scripts/eval_chat.py --runs bare grounded --temperature 0

Questions, the facts a right answer holds and the misconceptions a wrong one
states are in scripts/chat_eval_questions.yaml. A reply is right when it holds
every fact and states no misconception. "What a learner gets" judges the reply
together with the sources shown under it. This is an evaluation, not a test:
it prints shares and exits 0.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from demos.chat import respond  # noqa: E402
from demos.chat_logic import DEFAULT_SYSTEM_PROMPT, SAMPLING_DEFAULTS  # noqa: E402
from demos.course.retrieval import course_index  # noqa: E402
from demos.model_slot import ModelSlot  # noqa: E402

QUESTIONS = Path(__file__).with_name("chat_eval_questions.yaml")
NEGATIONS = re.compile(r"\b(not|no|never|isn't|aren't|doesn't|don't|cannot|can't|won't|nor|neither)\b[^.!?]{0,40}$")
RUNS = {  # name: (grounded, sampling)
    "bare": (False, {"temperature": 0.7, "top_p": 0.9, "repetition_penalty": 1.0}),  # the chat before grounding
    "bare-defaults": (False, SAMPLING_DEFAULTS),
    "grounded": (True, SAMPLING_DEFAULTS),
}


def phrase_pattern(phrase: str) -> re.Pattern:
    """A phrasing as a regex: words match at word edges, "..." allows a gap of a few words."""
    parts = [re.escape(part.strip()) for part in phrase.lower().split("...")]
    body = r"(?:\W+\w+){0,4}?\W+".join(parts)
    return re.compile(rf"(?<!\w){body}" + (r"(?!\w)" if phrase[-1].isalnum() else ""))


def holds(text: str, phrasings: list[str]) -> bool:
    return any(phrase_pattern(p).search(text) for p in phrasings)


def states(text: str, misconception: str) -> bool:
    """The misconception is said, and not denied just before it in its sentence."""
    return any(not NEGATIONS.search(text[: m.start()]) for m in phrase_pattern(misconception).finditer(text))


def judge(text: str, question: dict) -> bool:
    text = text.lower()
    return all(holds(text, fact) for fact in question["facts"]) and not any(states(text, m) for m in question["misconceptions"])


def passage_topic(passage) -> str:
    return {"diagnostic": "diagnostic", "port": "port"}.get(passage.kind, passage.concept)


def evaluate_retrieval(questions: list[dict]) -> None:
    index = course_index()
    first = within = 0
    times = []
    for question in questions:
        start = time.perf_counter()
        hits = index.search(question["q"])
        times.append(time.perf_counter() - start)
        topics = [passage_topic(hit.passage) for hit in hits] or ["off-topic"]
        first += topics[0] == question["topic"]
        within += question["topic"] in topics
        if topics[0] != question["topic"]:
            print(f"  retrieval: {question['q']!r} wants {question['topic']}, got {topics}")
    n = len(questions)
    print(f"retrieval: best passage on the right topic {first}/{n} ({first / n:.0%}), "
          f"among those given {within}/{n} ({within / n:.0%}); median {statistics.median(times) * 1000:.1f} ms")


def evaluate_replies(questions: list[dict], runs: list[str], temperature: float | None, model: str) -> None:
    import model_runtime

    slot = ModelSlot()
    slot.engine = model_runtime.load(model, max_batch=1)
    for name in runs:
        grounded, sampling = RUNS[name]
        sampling = dict(sampling, **({} if temperature is None else {"temperature": temperature}))
        right_reply = right_seen = 0
        ttfts = []
        for number, question in enumerate(questions):
            *_, (reply, stats, sources) = respond(
                slot, question["q"], [], DEFAULT_SYSTEM_PROMPT, sampling["temperature"], sampling["top_p"],
                256, sampling["repetition_penalty"], grounded,
            )  # fmt: skip
            ttfts.append(float(stats.split(" s to first token")[0]))
            shown = reply + "\n" + "\n".join(p.text for p in sources)
            right_reply += judge(reply, question)
            right_seen += judge(shown, question)
            print(f"[{name} {number + 1}/{len(questions)}] {'right' if judge(shown, question) else 'WRONG'}: "
                  f"{question['q']}\n    {reply.strip()[:300]!r}", flush=True)
        n = len(questions)
        print(f"== {name} ({sampling}): reply alone right {right_reply}/{n} ({right_reply / n:.0%}), "
              f"what a learner gets right {right_seen}/{n} ({right_seen / n:.0%}); "
              f"time to first token median {statistics.median(ttfts):.2f} s", flush=True)
    slot.engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--retrieval", action="store_true", help="only check which passages are found")
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=["bare", "grounded"])
    parser.add_argument("--temperature", type=float, help="override every run's temperature")
    parser.add_argument("--model", default="default")
    args = parser.parse_args()
    questions = yaml.safe_load(QUESTIONS.read_text(encoding="utf-8"))
    evaluate_retrieval(questions)
    if not args.retrieval:
        evaluate_replies(questions, args.runs, args.temperature, args.model)


if __name__ == "__main__":
    main()
