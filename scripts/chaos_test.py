"""Chaos load run: many sessions for a few minutes while things go wrong on purpose.

    python scripts/chaos_test.py                    # 32 sessions, 180 s, the embedded model
    python scripts/chaos_test.py --sessions 16 --duration 60 --fault-after-steps 100
    python scripts/chaos_test.py --model HuggingFaceTB/SmolLM2-360M-Instruct   # options it does not know go to app.py

It starts two copies of the app on loopback: the first loads the model, with
one engine step set to fail (PLAYGROUND_INJECT_FAULT_AFTER_STEPS); the second
has no model of its own and uses the first as its --backend-url. Then every
session asks question after question until the time is up, each through one
of three doors: the first app's page (gradio_client), its OpenAI API (the
openai client), or the second app's page. One session in four leaves each
reply after its first words, as a closed tab does.

It passes when every reply that neither left nor was in the failed step
completed (busy answers are counted, not failures), no KV-cache slot is still
held once the sessions stop (the first app's /metrics), and the first app's
memory grew less than --rss-bound-mb. Prints a summary and writes JSON to
--out (default artifacts/chaos.json). Sends to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import httpx
import openai
from gradio_client import Client
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts.load_test import (  # noqa: E402  (run as a script, the project root is not on the path)
    MODEL_READY_WITHIN, QUESTIONS, REPETITION_PENALTY, ROOT, SAMPLING, SYSTEM_PROMPT, free_port, machine, percentile,
    rss_mb, start_app, stop_app, wait_until_model_ready, wait_until_serving,
)

DOORS = ("page", "api", "remote page")  # every session keeps to one door
FAULT = "injected fault"


@dataclass
class Reply:
    door: str
    outcome: str  # completed, left, fault, busy, error
    ttft_s: float | None = None
    detail: str = ""


def ask_page(client: Client, door: str, message: str, leave: bool, max_new_tokens: int) -> Reply:
    started = time.monotonic()
    job = client.submit(message, SYSTEM_PROMPT, *SAMPLING, max_new_tokens, REPETITION_PENALTY, False, api_name="/chat")
    ttft = None
    try:
        while not job.done():
            outputs = job.outputs()
            if outputs and outputs[-1][0]:
                ttft = ttft or time.monotonic() - started
                if leave:
                    job.cancel()
                    return Reply(door, "left", ttft)
            time.sleep(0.02)
        reply, stats, _ = job.result(timeout=60)
    except Exception as error:  # noqa: BLE001 - every failure is counted and shown
        text = f"{type(error).__name__}: {error}"
        return Reply(door, "busy" if "busy" in text or "queue" in text.lower() else "error", ttft, text)
    if "failed:" in stats:
        return Reply(door, "fault" if FAULT in stats else "error", ttft, stats)
    return Reply(door, "completed" if reply else "error", ttft, "" if reply else f"an empty reply: {stats}")


def ask_api(client: openai.OpenAI, model: str, message: str, leave: bool, max_new_tokens: int) -> Reply:
    started, ttft = time.monotonic(), None
    try:
        stream = client.chat.completions.create(
            model=model, messages=[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": message}],
            max_tokens=max_new_tokens, temperature=SAMPLING[0], top_p=SAMPLING[1], stream=True,
            extra_body={"repetition_penalty": REPETITION_PENALTY},
        )
        with stream:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    ttft = ttft or time.monotonic() - started
                    if leave:
                        return Reply("api", "left", ttft)
    except openai.RateLimitError as error:
        return Reply("api", "busy", ttft, str(error))
    except Exception as error:  # noqa: BLE001
        text = f"{type(error).__name__}: {error}"
        return Reply("api", "fault" if FAULT in text else "error", ttft, text)
    return Reply("api", "completed", ttft)


def run_session(index: int, urls: dict[str, str], deadline: float, max_new_tokens: int) -> list[Reply]:
    door = DOORS[0] if index % 4 < 2 else DOORS[1] if index % 4 == 2 else DOORS[2]  # half, a quarter, a quarter
    leave = index // 4 % 4 == 0  # a quarter of the sessions, through every door
    if door == "api":
        client = openai.OpenAI(base_url=f"{urls['engine']}v1", api_key="none", max_retries=0, timeout=120)
        try:
            model = client.models.list().data[0].id
        except Exception as error:  # noqa: BLE001
            return [Reply(door, "error", detail=f"/v1/models: {type(error).__name__}: {error}")]
        ask = lambda message: ask_api(client, model, message, leave, max_new_tokens)  # noqa: E731
    else:
        client = Client(urls["engine" if door == "page" else "front"], verbose=False)
        ask = lambda message: ask_page(client, door, message, leave, max_new_tokens)  # noqa: E731
    replies, turn = [], index
    while time.monotonic() < deadline:
        replies.append(ask(QUESTIONS[turn % len(QUESTIONS)]))
        turn += 1
        if replies[-1].outcome == "busy":
            time.sleep(1.0)  # as a person would wait before asking again
    return replies


def engine_gauges(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}metrics", timeout=10).text
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples if not s.labels}


def settle(url: str, timeout: float = 60.0) -> dict[str, float]:
    """The first app's gauges once nothing is decoding or waiting (or at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        gauges = engine_gauges(url)
        if gauges["playground_requests_processing"] == 0 and gauges["playground_requests_deferred"] == 0:
            return gauges
        if time.monotonic() > deadline:
            return gauges
        time.sleep(0.5)


def summary(replies: list[Reply]) -> dict:
    counts = {outcome: sum(r.outcome == outcome for r in replies) for outcome in ("completed", "left", "fault", "busy", "error")}
    ttfts = [r.ttft_s for r in replies if r.ttft_s is not None]
    return {"replies": len(replies), **counts, "ttft_p50_s": percentile(ttfts, 0.5), "ttft_p95_s": percentile(ttfts, 0.95)}


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="Options it does not know go to the first app.py.")
    parser.add_argument("--sessions", type=int, default=32)
    parser.add_argument("--duration", type=float, default=180.0, help="seconds the sessions keep asking")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--fault-after-steps", type=int, default=300, help="engine steps before the one that fails, counted from the start (the two warm-up replies take about 32)")
    parser.add_argument("--rss-bound-mb", type=float, default=400.0, help="the first app's memory may grow by less than this")
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts" / "chaos.json")
    return parser.parse_known_args(argv)


def main(argv: list[str] | None = None) -> int:
    args, app_args = parse_args(argv)
    ports = {"engine": free_port(), "front": free_port()}
    urls = {name: f"http://127.0.0.1:{port}/" for name, port in ports.items()}
    env = {**os.environ, "PLAYGROUND_INJECT_FAULT_AFTER_STEPS": str(args.fault_after_steps)}
    with ExitStack() as stack:
        engine = start_app(["--queue-size", "32", *app_args], ports["engine"], env)
        stack.callback(stop_app, engine)
        wait_until_serving(urls["engine"], engine, 120)
        wait_until_model_ready(urls["engine"], MODEL_READY_WITHIN)
        front = start_app(["--backend-url", f"{urls['engine']}v1"], ports["front"], {k: v for k, v in env.items()
                                                                                      if not k.startswith("PLAYGROUND_INJECT")})
        stack.callback(stop_app, front)
        wait_until_serving(urls["front"], front, 120)
        wait_until_model_ready(urls["front"], 120)
        rss_before = rss_mb(engine)
        started = time.monotonic()
        print(f"{args.sessions} sessions for {args.duration:.0f} s…", flush=True)
        with ThreadPoolExecutor(max_workers=args.sessions) as pool:
            futures = [pool.submit(run_session, i, urls, started + args.duration, args.max_new_tokens) for i in range(args.sessions)]
            replies = [reply for future in futures for reply in future.result()]
        wall = time.monotonic() - started
        gauges = settle(urls["engine"])
        rss_after = rss_mb(engine)
        serving = all(httpx.get(url, timeout=10).status_code == 200 for url in urls.values())
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sessions": args.sessions,
        "duration_s": wall,
        "fault_after_steps": args.fault_after_steps,
        "machine": machine(),
        "all": summary(replies),
        "by_door": {door: summary([r for r in replies if r.door == door]) for door in DOORS},
        "engine_step_faults": gauges.get("playground_engine_step_faults_total"),
        "slots_held_after": gauges["playground_requests_processing"],
        "waiting_after": gauges["playground_requests_deferred"],
        "rss_before_mb": rss_before,
        "rss_after_mb": rss_after,
        "both_apps_serving": serving,
        "problems": sorted({r.detail for r in replies if r.outcome == "error"})[:20],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: report[k] for k in ("all", "by_door", "engine_step_faults", "slots_held_after",
                                             "rss_before_mb", "rss_after_mb", "both_apps_serving")}, indent=2))
    for problem in report["problems"]:
        print("problem:", problem)
    healthy = (report["all"]["error"] == 0 and report["slots_held_after"] == 0 and report["waiting_after"] == 0
               and serving and rss_after - rss_before < args.rss_bound_mb)
    print("PASS" if healthy else "FAIL", f"· JSON in {args.out}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
