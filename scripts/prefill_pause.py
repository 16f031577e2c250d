"""How long a long prompt stalls the replies already streaming, per prefill chunk size.

    python scripts/prefill_pause.py                       # chunks of 0 (all at once), 256, 128 and 64 tokens
    python scripts/prefill_pause.py --chunks 256 0 --rounds 3
    python scripts/prefill_pause.py --chunks 256 --no-drafts   # the running reply without prompt-lookup drafts

For each chunk size, one reply streams while a prompt of about 1,700 tokens
arrives; it prints the longest gap between the running reply's tokens and the
long prompt's time to first token. Runs alternate between chunk sizes. The
long prompt is prefilled whole every time: prefix reuse is off here, or the
second round would find it in a slot's cache.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import model_runtime  # noqa: E402
from model_runtime import GenerationParams  # noqa: E402

RUNNING = [{"role": "user", "content": "Explain what a Docker container is."}]
PARAGRAPH = "Containers package an application with its dependencies so it runs the same everywhere. "
LONG = [{"role": "user", "content": PARAGRAPH * 110 + "\nSummarize this in one sentence."}]


def measure(engine, chunk: int) -> tuple[float, float]:
    """(longest pause in the running reply, the long prompt's time to first token), in seconds."""
    engine.prefill_chunk = chunk or engine.max_seq_len
    running = engine.stream(RUNNING, GenerationParams(temperature=0, max_new_tokens=120, stop=[]))
    arrivals: list[float] = []
    reader = threading.Thread(target=lambda: arrivals.extend(time.perf_counter() for _ in running))
    reader.start()
    time.sleep(1.0)  # let the running reply settle into its pace
    long = engine.stream(LONG, GenerationParams(temperature=0, max_new_tokens=4, stop=[]))
    list(long)
    reader.join()
    return max(b - a for a, b in zip(arrivals, arrivals[1:])), long.stats.time_to_first_token_s


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, nargs="+", default=[0, 256, 128, 64], help="0: the whole prompt at once")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-drafts", action="store_true", help="decode the running reply without drafts")
    args = parser.parse_args(argv)
    engine = model_runtime.load(reuse_prefixes=False, speculate=not args.no_drafts)
    print(f"long prompt: {engine.count_tokens(LONG)} tokens")
    for _ in range(args.rounds):
        for chunk in args.chunks:
            pause, ttft = measure(engine, chunk)
            label = "all at once" if chunk == 0 else f"{chunk} a step"
            print(f"{label:>12}: longest pause {pause:.2f} s, long prompt's first token after {ttft:.2f} s", flush=True)
    engine.close()


if __name__ == "__main__":
    main()
