"""Load test: many chat sessions at once against the running app, through gradio_client.

    python scripts/load_test.py                          # starts app.py on a free port, default model and settings
    python scripts/load_test.py --url http://127.0.0.1:7860/
    python scripts/load_test.py --levels 16 --queue-size 4   # options it does not know go to app.py
    python scripts/load_test.py --levels 8 --api-sessions 8  # and 8 OpenAI-client streams on /v1 beside them

At each level N sessions start together, each in its own thread with its own
client; every other session sends a follow-up in the same conversation. Every
request must either finish or be told that the server is busy (queue full).
Per request it measures the time to the first streamed update (the first token
reached the client) and to the first words shown (a grounded reply shows whole
sentences once the course guard has read them), and per level
the tokens generated per second by all sessions together (from each reply's
"N tokens in, M out" stats line). When it started the server it also records
the server's memory (RSS) before and after each level. Each level has a time
limit; what is still running then is cancelled and counted as timed out.
With --api-sessions, as many more sessions stream from /v1/chat/completions
with the official openai client at the same time, sharing the engine with the
page's (a 429 counts as busy); the figures are given for both together and
for each channel.

Prints a table and writes JSON to --out (default artifacts/load.json).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import httpx
import openai
import psutil
from gradio_client import Client
from gradio_client.exceptions import AppError
from gradio_client.utils import QueueError

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = [
    "What is a Docker container, in two sentences?",
    "Why would I publish port 7860?",
    "What does docker compose up do?",
    "Is a container a virtual machine?",
]
FOLLOW_UP = "Give me one example."
SYSTEM_PROMPT = "Answer clearly and briefly."
SAMPLING = (0.7, 0.9)  # temperature, top-p: every session samples, so replies differ in length as people's would
REPETITION_PENALTY = 1.15  # the chat's default
POLL_SECONDS = 0.02  # how often a session looks for its first streamed update
MODEL_READY_WITHIN = 600.0  # the first start may convert the model


@dataclass
class RequestResult:
    outcome: str  # "completed", "busy", "timeout" or "error"
    ttft_s: float | None = None
    first_words_s: float | None = None  # to the first update with text in it
    total_s: float | None = None
    tokens_out: int = 0
    detail: str = ""
    channel: str = "ui"  # "ui" (gradio_client, /chat) or "api" (openai, /v1)


# -- the app under test ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(app_args: list[str], port: int, env: dict | None = None, log=subprocess.DEVNULL) -> subprocess.Popen:
    """`python app.py` on 127.0.0.1:`port`; its output goes to `log`."""
    command = [sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port), *app_args]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)


def wait_until_serving(url: str, process: subprocess.Popen | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the app exited with code {process.returncode} before serving")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.2)
    raise TimeoutError(f"the app did not serve {url} within {timeout:.0f} s")


def stop_app(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def served_app(url: str | None, app_args: list[str]) -> Iterator[tuple[str, subprocess.Popen | None]]:
    """(url, server process or None): the app at `url`, else app.py started on a free port; ready to chat."""
    server = None
    if url is None:
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        server = start_app(app_args, port)
    try:
        wait_until_serving(url, server, timeout=120)
        wait_until_model_ready(url, MODEL_READY_WITHIN)
        yield url, server
    finally:
        if server is not None:
            stop_app(server)


def wait_until_model_ready(url: str, timeout: float) -> None:
    """Until a chat request is answered; the app refuses them while the model loads. Also warms the model up."""
    client = Client(url, verbose=False)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.predict("Hi", SYSTEM_PROMPT, 0.0, 1.0, 16, 1.0, False, api_name="/chat")
            return
        except AppError as error:
            if time.monotonic() > deadline or "could not be loaded" in str(error):
                raise RuntimeError(f"the model is not ready: {error}") from None
        time.sleep(1.0)


# -- sessions ---------------------------------------------------------------------------


def tokens_out(stats: str) -> int:
    found = re.search(r"tokens in, (\d+) out", stats or "")
    return int(found.group(1)) if found else 0


def send(client: Client, message: str, max_new_tokens: int, grounded: bool, deadline: float) -> RequestResult:
    started = time.monotonic()
    try:
        job = client.submit(message, SYSTEM_PROMPT, *SAMPLING, max_new_tokens, REPETITION_PENALTY, grounded, api_name="/chat")
        ttft = first_words = None
        while first_words is None and not job.done():
            if time.monotonic() > deadline:
                job.cancel()
                return RequestResult("timeout", detail="no words before the level's time limit")
            outputs = job.outputs()
            if outputs and ttft is None:
                ttft = time.monotonic() - started
            if outputs and outputs[-1][0]:
                first_words = time.monotonic() - started
            time.sleep(POLL_SECONDS)
        reply, stats, _ = job.result(timeout=max(0.0, deadline - time.monotonic()))
        if first_words is None and reply:  # every word came with the last update
            first_words = time.monotonic() - started
    except QueueError as error:
        return RequestResult("busy", detail=str(error))
    except TimeoutError:
        job.cancel()
        return RequestResult("timeout", detail="unfinished at the level's time limit")
    except Exception as error:  # every other failure is what the test is looking for: count and show it
        return RequestResult("error", detail=f"{type(error).__name__}: {error}")
    return RequestResult("completed", ttft, first_words, time.monotonic() - started, tokens_out(stats))


def run_session(url: str, index: int, max_new_tokens: int, grounded: bool, start: threading.Barrier, deadline: float) -> list[RequestResult]:
    client = Client(url, verbose=False)
    messages = [QUESTIONS[index % len(QUESTIONS)]] + [FOLLOW_UP] * (index % 2)
    start.wait()
    results = []
    for message in messages:
        result = send(client, message, max_new_tokens, grounded, deadline)
        results.append(result)
        if result.outcome != "completed":
            break  # a busy or failed turn ends the conversation, as a person would retry later
    return results


def send_api(client: openai.OpenAI, model: str, messages: list[dict], max_new_tokens: int, deadline: float) -> tuple[RequestResult, str]:
    """One streamed /v1 reply: (its result, its text)."""
    started = time.monotonic()
    ttft, text, produced = None, "", 0
    try:
        stream = client.chat.completions.create(
            model=model, messages=messages, max_tokens=max_new_tokens, temperature=SAMPLING[0], top_p=SAMPLING[1],
            stream=True, stream_options={"include_usage": True}, extra_body={"repetition_penalty": REPETITION_PENALTY},
            timeout=max(1.0, deadline - started),
        )
        with stream:
            for chunk in stream:
                if chunk.usage:
                    produced = chunk.usage.completion_tokens
                if chunk.choices and chunk.choices[0].delta.content:
                    ttft = ttft or time.monotonic() - started
                    text += chunk.choices[0].delta.content
                if time.monotonic() > deadline:
                    return RequestResult("timeout", detail="unfinished at the level's time limit", channel="api"), text
    except openai.RateLimitError as error:
        return RequestResult("busy", detail=str(error), channel="api"), text
    except Exception as error:  # counted and shown, as for the page's sessions
        return RequestResult("error", detail=f"{type(error).__name__}: {error}", channel="api"), text
    return RequestResult("completed", ttft, ttft, time.monotonic() - started, produced, channel="api"), text


def run_api_session(url: str, index: int, max_new_tokens: int, start: threading.Barrier, deadline: float) -> list[RequestResult]:
    client = openai.OpenAI(base_url=f"{url}v1", api_key=os.environ.get("PLAYGROUND_API_KEY", "none"), max_retries=0)
    conversation = [{"role": "system", "content": SYSTEM_PROMPT}]
    start.wait()
    try:
        model = client.models.list().data[0].id
    except Exception as error:  # after the barrier, so that the other sessions still start
        return [RequestResult("error", detail=f"/v1/models: {type(error).__name__}: {error}", channel="api")]
    results = []
    for message in [QUESTIONS[index % len(QUESTIONS)]] + [FOLLOW_UP] * (index % 2):
        conversation.append({"role": "user", "content": message})
        result, reply = send_api(client, model, conversation, max_new_tokens, deadline)
        results.append(result)
        if result.outcome != "completed":
            break
        conversation.append({"role": "assistant", "content": reply})
    return results


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile; None when there is nothing to rank."""
    if not values:
        return None
    ranked = sorted(values)
    return ranked[max(0, math.ceil(fraction * len(ranked)) - 1)]


def rss_mb(process: subprocess.Popen | None) -> float | None:
    return psutil.Process(process.pid).memory_info().rss / 2**20 if process else None


def run_level(url: str, sessions: int, max_new_tokens: int, grounded: bool, time_limit: float, server: subprocess.Popen | None,
              api_sessions: int = 0) -> dict:
    rss_before = rss_mb(server)
    start = threading.Barrier(sessions + api_sessions + 1)
    with ThreadPoolExecutor(max_workers=sessions + api_sessions) as pool:
        deadline = time.monotonic() + time_limit
        futures = [pool.submit(run_session, url, i, max_new_tokens, grounded, start, deadline) for i in range(sessions)]
        futures += [pool.submit(run_api_session, url, i, max_new_tokens, start, deadline) for i in range(api_sessions)]
        start.wait()
        began = time.monotonic()
        results = [result for future in futures for result in future.result()]
    wall = time.monotonic() - began
    level = {"sessions": sessions, "api_sessions": api_sessions, **summary(results, wall)}
    if api_sessions:
        level["by_channel"] = {channel: summary([r for r in results if r.channel == channel], wall) for channel in ("ui", "api")}
    return {
        **level,
        "rss_before_mb": rss_before,
        "rss_after_mb": rss_mb(server),
        "server_serving": server_serving(url, server),
    }


def summary(results: list[RequestResult], wall: float) -> dict:
    ttfts = [r.ttft_s for r in results if r.ttft_s is not None]
    first_words = [r.first_words_s for r in results if r.first_words_s is not None]
    produced = sum(r.tokens_out for r in results)
    counts = {outcome: sum(r.outcome == outcome for r in results) for outcome in ("completed", "busy", "timeout", "error")}
    return {
        "requests": len(results),
        **counts,
        "ttft_p50_s": percentile(ttfts, 0.50),
        "ttft_p95_s": percentile(ttfts, 0.95),
        "first_words_p50_s": percentile(first_words, 0.50),
        "tokens_out": produced,
        "wall_s": wall,
        "tokens_per_s": produced / wall if wall else None,
        "problems": sorted({r.detail for r in results if r.outcome == "error"}),
    }


def server_serving(url: str, server: subprocess.Popen | None) -> bool:
    if server is not None and server.poll() is not None:
        return False
    try:
        return httpx.get(url, timeout=10).status_code == 200
    except httpx.TransportError:
        return False


# -- report -----------------------------------------------------------------------------


def number(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(levels: list[dict]) -> str:
    header = "sessions+api requests completed busy timeout error  TTFT p50 s  TTFT p95 s  words p50 s  tokens/s   wall s  RSS before→after MB"
    rows = [
        f"{str(lv['sessions']) + '+' + str(lv['api_sessions']):>12} {lv['requests']:>8} {lv['completed']:>9} {lv['busy']:>4} {lv['timeout']:>7} {lv['error']:>5}"
        f"  {number(lv['ttft_p50_s']):>10}  {number(lv['ttft_p95_s']):>10}  {number(lv['first_words_p50_s']):>11}  {number(lv['tokens_per_s'], 1):>8}"
        f"  {number(lv['wall_s'], 1):>7}  {number(lv['rss_before_mb'], 0)}→{number(lv['rss_after_mb'], 0)}"
        for lv in levels
    ]
    return "\n".join([header, *rows])


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass  # not Linux: the platform string has to do
    return platform.processor()


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="Options it does not know are passed to app.py.")
    parser.add_argument("--url", help="test this running app instead of starting one")
    parser.add_argument("--levels", type=int, nargs="+", default=[8, 16, 32], help="concurrent sessions per level")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--api-sessions", type=int, default=0, help="OpenAI-client sessions on /v1 beside each level's page sessions")
    parser.add_argument("--plain", dest="grounded", action="store_false", help="ask /chat without the course's notes")
    parser.add_argument("--level-time-limit", type=float, default=300.0, help="seconds a level may run")
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts" / "load.json")
    return parser.parse_known_args(argv)


def main(argv: list[str] | None = None) -> int:
    args, app_args = parse_args(argv)
    started = time.monotonic()
    with served_app(args.url, app_args) as (url, server):
        rss_start = rss_mb(server)
        levels = []
        for sessions in args.levels:
            print(f"{sessions} sessions…", flush=True)
            levels.append(run_level(url, sessions, args.max_new_tokens, args.grounded, args.level_time_limit, server, args.api_sessions))
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "url": args.url or "app.py started by the script",
        "app_args": app_args,
        "max_new_tokens": args.max_new_tokens,
        "grounded": args.grounded,
        "level_time_limit_s": args.level_time_limit,
        "machine": machine(),
        "rss_start_mb": rss_start,
        "levels": levels,
        "duration_s": time.monotonic() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(table(levels))
    for level in levels:
        for channel, part in level.get("by_channel", {}).items():
            print(f"  {level['sessions']}+{level['api_sessions']} {channel}: {part['completed']} completed, {part['busy']} busy, "
                  f"{part['error']} errors, TTFT p50/p95 {number(part['ttft_p50_s'])}/{number(part['ttft_p95_s'])} s, "
                  f"{number(part['tokens_per_s'], 1)} tokens/s")
    print(f"RSS at start {number(rss_start, 0)} MB · took {report['duration_s']:.0f} s · JSON in {args.out}")
    healthy = all(lv["error"] == 0 and lv["timeout"] == 0 and lv["server_serving"] for lv in levels)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
