"""The grounded conversation model_runtime.bench replays, built from the course as the Chat tab builds it.

    python scripts/bench_prompts.py            # rewrite model_runtime/bench_conversation.json
    python scripts/bench_prompts.py --check    # exit 1 if the file no longer matches the course

The runtime does not read the course (nothing under model_runtime imports
demos/), so the bench gets each turn's newest message, with its course
notes, from this file. The bench keeps the conversation the way the chat
sends it: each question with its notes, then the model's own reply.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from demos.chat import find_sources  # noqa: E402
from demos.chat_logic import DEFAULT_SYSTEM_PROMPT, NOTES_TOKENS, build_prompt  # noqa: E402

OUT = ROOT / "model_runtime" / "bench_conversation.json"
QUESTIONS = [
    "What is a Docker image?",
    "And how is a container different from it?",
    "Which port does a Gradio app listen on?",
    "How do I reach it from my browser with docker run?",
    "What does Docker Compose add when I have two services?",
]


def conversation(count_tokens) -> dict:
    """Each turn's question and its newest message with the course's notes, as build_prompt makes it."""
    history, turns = [], []
    for question in QUESTIONS:
        sources = find_sources(question, history, grounded=True)
        prompt = build_prompt(DEFAULT_SYSTEM_PROMPT, [], question, sources, count_tokens, budget=2 * NOTES_TOKENS + 512)
        turns.append({"question": question, "message": prompt.messages[-1]["content"],
                      "notes": [passage.id for passage in prompt.passages]})
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": ""}]
    return {"system": DEFAULT_SYSTEM_PROMPT, "turns": turns}


def embedded_token_counter():
    """The embedded model's chat-template token count (its tokenizer only, not its weights)."""
    from transformers import AutoTokenizer

    from model_runtime.loading import converted_gguf, resolve

    tokenizer = AutoTokenizer.from_pretrained(converted_gguf(Path(resolve("default")), report=lambda _: None))
    return lambda messages: len(tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether the file is current")
    args = parser.parse_args()
    text = json.dumps(conversation(embedded_token_counter()), indent=2, ensure_ascii=False) + "\n"
    if args.check:
        current = OUT.exists() and OUT.read_text(encoding="utf-8") == text
        print("current" if current else f"stale: run python scripts/{Path(__file__).name}")
        return 0 if current else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
