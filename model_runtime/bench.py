"""Benchmark the engine against the tools a user would otherwise pick.

    python -m model_runtime.bench                  # CPU: engine vs transformers (vs llama.cpp if installed)
    python -m model_runtime.bench --device cuda    # GPU: + CUDA graphs, 4-bit, static-cache compiled generate
    python -m model_runtime.bench --check          # exit 1 when a target is missed

Every contender decodes the same prompt, greedily, for the same number of
tokens, in one process; runs alternate between contenders so that a noisy,
shared machine slows them alike, and medians are reported. Ratios against the
peers matter more than absolute figures.

Three rows follow for the grounded chat, the engine against llama.cpp:
greedy replies to the five questions of bench_conversation.json, each with
its course notes, with and without drafted tokens (prompt lookup), for one
stream and eight; the time to first token of each turn of the same questions
asked as one conversation (the chat's own prompts, each question keeping its
notes in the history as the chat sends them; both keep the previous turn's
cache); and the prefill rate of fresh 128- to 2,048-token prompts.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

import model_runtime
from model_runtime import GenerationParams
from model_runtime.cpu import weight_format
from model_runtime.loading import load_pretrained, resolve
from model_runtime.quantize import Float16Linear, quantize_cpu

PROMPT = [{"role": "user", "content": "Explain what a Docker container is, and how it differs from a virtual machine."}]
# A grounded conversation as the Chat tab builds it (scripts/bench_prompts.py writes it).
CONVERSATION = Path(__file__).with_name("bench_conversation.json")
PREFILL_LENGTHS = (128, 512, 1024, 2048)
LONGEST_PROMPT = max(PREFILL_LENGTHS)
STREAMS = (1, 4, 8)
# The chat tab's defaults, seeded so that every run samples the same replies.
CHAT_SAMPLING = GenerationParams(temperature=0.7, top_p=0.9, seed=0, stop=[])
SAMPLED = "sampling at T 0.7, top-p 0.9"
NO_DRAFTS = "no drafts"
OPENINGS = itertools.count(1)  # a line of its own opens each grounded prompt, so no run reuses another's cache


@dataclass
class Run:
    ttft_s: float
    decode_tokens_per_s: float


@dataclass
class Reply:
    ttft_s: float
    decode_tokens_per_s: float
    drafted: int | None = None  # tokens guessed by prompt lookup; None where the contender does not draft
    accepted: int | None = None


@dataclass
class Result:
    name: str
    runs: list[Run] = field(default_factory=list)
    aggregate_runs: dict[int, list[float]] = field(default_factory=dict)  # streams -> tokens/s of each round
    memory_mb: float | None = None

    @property
    def aggregate(self) -> dict[int, float]:  # streams -> median tokens/s
        return {streams: statistics.median(runs) for streams, runs in self.aggregate_runs.items()}

    def summary(self) -> dict:
        return {
            "name": self.name,
            "decode_tokens_per_s": statistics.median(r.decode_tokens_per_s for r in self.runs),
            "time_to_first_token_s": statistics.median(r.ttft_s for r in self.runs),
            "runs": [r.__dict__ for r in self.runs],
            "aggregate_tokens_per_s": self.aggregate,
            "aggregate_runs": self.aggregate_runs,
            "memory_mb": self.memory_mb,
        }


class EngineContender:
    """The engine, greedy unless `params` say otherwise (a sampled reply may end early, at its own end token)."""

    def __init__(self, name: str, engine, params: GenerationParams = GenerationParams(temperature=0, stop=[])):
        self.name, self.engine, self.params = name, engine, params

    def run(self, new_tokens: int) -> Run:
        done = self.engine.complete(PROMPT, replace(self.params, max_new_tokens=new_tokens))
        return Run(done.stats.time_to_first_token_s, done.stats.decode_tokens_per_s)

    def reply(self, messages: list[dict], new_tokens: int) -> Reply:
        stats = self.engine.complete(messages, replace(self.params, max_new_tokens=new_tokens)).stats
        return Reply(stats.time_to_first_token_s, stats.decode_tokens_per_s, stats.drafted_tokens, stats.accepted_tokens)

    def chat(self, messages: list[dict], new_tokens: int) -> tuple[str, float]:
        """One turn: the reply's text and its time to first token (the slot's cache kept, as in the app)."""
        done = self.engine.complete(messages, replace(self.params, max_new_tokens=new_tokens))
        return done.text, done.stats.time_to_first_token_s

    def aggregate(self, streams: int, new_tokens: int, prompts: list[list[dict]] = (PROMPT,)) -> float:
        """Tokens per second over `streams` requests decoding at the same time, taking `prompts` in turn."""
        params = replace(self.params, max_new_tokens=new_tokens)
        started = time.perf_counter()
        handles = [self.engine.stream(prompts[i % len(prompts)], params) for i in range(streams)]
        threads = [threading.Thread(target=lambda s=s: list(s)) for s in handles]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(s.stats.completion_tokens for s in handles) / (time.perf_counter() - started)


class GenerateContender:
    """transformers' model.generate on the same weights (eager, or its static-cache compiled path)."""

    def __init__(self, name: str, hf_model, tokenizer, device, **generate_kwargs):
        self.name, self.model, self.kwargs = name, hf_model, generate_kwargs
        self.compiled = generate_kwargs.get("cache_implementation") == "static"  # generate compiles its forward then
        ids = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        self.ids = ids["input_ids"].to(device)

    def _generate(self, batch: int, new_tokens: int) -> float:
        ids = self.ids.expand(batch, -1)
        started = time.perf_counter()
        with torch.inference_mode():
            self.model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                do_sample=False, **self.kwargs,
            )
        sync()
        return time.perf_counter() - started

    def run(self, new_tokens: int) -> Run:
        ttft = self._generate(1, 1)
        total = self._generate(1, new_tokens)
        return Run(ttft, (new_tokens - 1) / max(total - ttft, 1e-9))

    def aggregate(self, streams: int, new_tokens: int) -> float:
        return streams * new_tokens / self._generate(streams, new_tokens)


class LlamaCppContender:
    """llama.cpp through llama-cpp-python on the GGUF file itself (not a dependency)."""

    def __init__(self, gguf: str):
        from llama_cpp import Llama

        self.name = "llama.cpp (GGUF)"
        self.llm = Llama(model_path=gguf, n_ctx=LONGEST_PROMPT + 64, n_threads=os.cpu_count(), verbose=False)

    def _stream(self, messages: list[dict], new_tokens: int) -> tuple[str, float, int, float]:
        """(text, time to first token, tokens, total seconds) of one greedy reply. llama-cpp-python
        keeps the KV of the tokens the previous call shares with this one, as the engine does."""
        started = time.perf_counter()
        first, produced, text = None, 0, []
        for chunk in self.llm.create_chat_completion(messages, max_tokens=new_tokens, temperature=0, stream=True):
            if piece := chunk["choices"][0]["delta"].get("content"):  # the first chunk carries only the role
                first = first or time.perf_counter()
                produced += 1
                text.append(piece)
        return "".join(text), (first or time.perf_counter()) - started, produced, time.perf_counter() - started

    def run(self, new_tokens: int, messages: list[dict] = PROMPT) -> Run:
        _, ttft, produced, total = self._stream(messages, new_tokens)
        return Run(ttft, (produced - 1) / max(total - ttft, 1e-9))

    def reply(self, messages: list[dict], new_tokens: int) -> Reply:
        run = self.run(new_tokens, messages)
        return Reply(run.ttft_s, run.decode_tokens_per_s)

    def chat(self, messages: list[dict], new_tokens: int) -> tuple[str, float]:
        text, ttft, *_ = self._stream(messages, new_tokens)
        return text, ttft

    def prefill(self, messages: list[dict]) -> float:
        """Seconds to the first token of a prompt nothing of which is cached."""
        self.llm.reset()
        return self._stream(messages, 1)[1]


class FreshPrefill:
    """The engine's prefill of prompts it has never seen: one slot, a context for the longest prompt, no reuse."""

    def __init__(self, model: str, device: str):
        self.engine = model_runtime.load(model, device=device, max_batch=1, max_seq_len=LONGEST_PROMPT + 64,
                                         reuse_prefixes=False)

    def prefill(self, messages: list[dict]) -> float:
        return self.engine.complete(messages, GenerationParams(temperature=0, max_new_tokens=1)).stats.time_to_first_token_s


def prompt_of(tokens: int, count_tokens) -> list[dict]:
    """A user message of course text whose chat-templated prompt is `tokens` long, give or take a token or two."""
    filler = " ".join(turn["message"] for turn in json.loads(CONVERSATION.read_text(encoding="utf-8"))["turns"])
    words = (filler.split() * (tokens // 50 + 2))
    low, high = 0, len(words)
    while low < high:  # the most words that fit
        middle = (low + high + 1) // 2
        if count_tokens([{"role": "user", "content": " ".join(words[:middle])}]) <= tokens:
            low = middle
        else:
            high = middle - 1
    return [{"role": "user", "content": " ".join(words[:low])}]


def grounded_prompts() -> list[list[dict]]:
    """The conversation's questions, each alone with its notes, opened by a line no earlier run used."""
    script = json.loads(CONVERSATION.read_text(encoding="utf-8"))
    return [[{"role": "system", "content": f"Run {next(OPENINGS)}. {script['system']}"},
             {"role": "user", "content": turn["message"]}] for turn in script["turns"]]


def grounded_row(racers: list, rounds: int, new_tokens: int) -> dict:
    """Greedy replies to the grounded prompts, rounds alternating: each contender's median decode rate
    and time to first token over the prompts, the share of drafted tokens kept, and, for the engine,
    the aggregate rate of 8 streams over the same prompts."""
    replies = {racer.name: [] for racer in racers}
    together = {racer.name: [] for racer in racers if hasattr(racer, "engine")}
    for _ in range(rounds):
        for racer in racers:
            replies[racer.name] += [racer.reply(messages, new_tokens) for messages in grounded_prompts()]
        for racer in racers:
            if racer.name in together:
                together[racer.name].append(racer.aggregate(max(STREAMS), new_tokens, grounded_prompts()))
    row = {}
    for name, done in replies.items():
        drafted = sum(r.drafted or 0 for r in done)
        row[name] = {
            "decode_tokens_per_s": statistics.median(r.decode_tokens_per_s for r in done),
            "time_to_first_token_s": statistics.median(r.ttft_s for r in done),
            "acceptance": sum(r.accepted or 0 for r in done) / drafted if drafted else None,
            f"aggregate_{max(STREAMS)}_streams_tokens_per_s": statistics.median(together[name]) if name in together else None,
        }
    return row


def conversation_row(racers: list, rounds: int, new_tokens: int) -> dict:
    """Time to first token of each turn of the grounded conversation in bench_conversation.json, for each
    contender, rounds alternating. Each round opens with its own system line, so no round reuses another's."""
    script = json.loads(CONVERSATION.read_text(encoding="utf-8"))
    ttfts = {racer.name: [] for racer in racers}
    for number in range(rounds):
        for racer in racers:
            history = [{"role": "system", "content": f"Round {number + 1}. {script['system']}"}]
            turns = []
            for turn in script["turns"]:
                text, ttft = racer.chat(history + [{"role": "user", "content": turn["message"]}], new_tokens)
                turns.append(ttft)
                history += [{"role": "user", "content": turn["message"]}, {"role": "assistant", "content": text}]
            ttfts[racer.name].append(turns)
    return {name: [statistics.median(r[i] for r in runs) for i in range(len(script["turns"]))]
            for name, runs in ttfts.items()}


def prefill_row(racers: list, count_tokens, rounds: int) -> dict:
    """Prompt tokens per second of fresh prompts of PREFILL_LENGTHS tokens, rounds alternating."""
    prompts = {n: prompt_of(n, count_tokens) for n in PREFILL_LENGTHS}
    rates = {racer.name: {n: [] for n in PREFILL_LENGTHS} for racer in racers}
    for _ in range(rounds):
        for n, messages in prompts.items():
            for racer in racers:
                rates[racer.name][n].append(count_tokens(messages) / racer.prefill(messages))
    return {name: {n: statistics.median(runs) for n, runs in by_length.items()} for name, by_length in rates.items()}


def progress(message: str) -> None:
    """A line on stderr as each phase ends, so a run cut short still shows how far it got."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def memory_mb(contender, device: str) -> float:
    """GPU: peak allocated while it ran. CPU: its weights plus KV cache (one process holds all contenders)."""
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    if isinstance(contender, LlamaCppContender):
        return os.path.getsize(contender.llm.model_path) / 2**20
    model = contender.engine.backend.net if isinstance(contender, EngineContender) else contender.model
    tensors = list(model.parameters()) + list(model.buffers())
    tensors += [t for m in model.modules() for t in (getattr(m, "k_cache", None), getattr(m, "v_cache", None)) if t is not None]
    packed = sum(m.nbytes for m in model.modules() if isinstance(m, Float16Linear))  # opaque fbgemm weights
    return (sum(t.numel() * t.element_size() for t in tensors) + packed) / 2**20


def timed_start(model: str, cache: str | None) -> float:
    """Seconds from a fresh interpreter to a ready engine (cold when `cache` is a new folder)."""
    env = dict(os.environ, **({"PLAYGROUND_CACHE_DIR": cache} if cache else {}))
    code = (
        "import time; t = time.perf_counter(); import model_runtime; "
        f"e = model_runtime.load({model!r}, device='cpu'); print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def contenders(args) -> list:
    found = []
    load = lambda quantization, **kwargs: model_runtime.load(args.model, quantization=quantization,  # noqa: E731
                                                             device=args.device, max_batch=8, **kwargs)
    if args.device == "cuda":
        graphs = load("none")
        found.append(EngineContender("engine bf16, CUDA graphs", graphs))
        found.append(EngineContender(f"engine bf16, CUDA graphs, {SAMPLED}", graphs, CHAT_SAMPLING))
        found.append(EngineContender("engine 4-bit NF4, CUDA graphs", load("4bit")))
        hf = load_pretrained(args.model)[0]  # the float32 checkpoint, which generate moves
        found.append(GenerateContender("transformers generate (eager)", hf, graphs.tokenizer, "cuda"))
        found.append(GenerateContender(
            "transformers generate (static cache, compiled)", hf, graphs.tokenizer, "cuda", cache_implementation="static",
        ))
    else:
        weights = weight_format("auto")
        default = load("auto")
        found.append(EngineContender(f"engine, {weights} weights", default))
        found.append(EngineContender(f"engine, {weights} weights, {SAMPLED}", default, CHAT_SAMPLING))
        found.append(EngineContender(f"engine, {weights} weights, {NO_DRAFTS}", load("auto", speculate=False)))
        if weights != "float16" and Float16Linear.available():  # the fallback format, for comparison
            float16 = load("none")
            quantize_cpu(float16.backend.net, "float16")  # swaps the layers the running engine decodes with
            found.append(EngineContender("engine, float16 weights", float16))
        if weight_format("4bit") != weights:
            found.append(EngineContender(f"engine, {weight_format('4bit')} weights", load("4bit")))
        exact = load("none")
        found.append(EngineContender("engine, float32 weights", exact))
        found.append(GenerateContender("transformers generate (float32)", load_pretrained(args.model)[0], exact.tokenizer, "cpu"))
        gguf = resolve(args.model)
        if gguf.endswith(".gguf"):
            try:
                found.append(LlamaCppContender(gguf))
            except ImportError:
                print("llama-cpp-python is not installed: llama.cpp left out", file=sys.stderr)
    return found


TARGETS = {
    "cpu": [
        ("vs transformers generate (float32)", 3.0),
        ("aggregate 8 streams vs 1", 4.0),
        ("time to first token, turn 1 over turn 5", 1 / 1.2),  # the 5th turn within 1.2x the 1st
        ("vs llama.cpp, 512-token fresh prefill", 2.5),
        ("vs llama.cpp, grounded replies, one stream", 1.5),
        ("vs llama.cpp one stream, grounded replies, 8 streams", 4.0),
        (f"plain prompt vs {NO_DRAFTS}", 0.95),
    ],
    "cuda": [
        ("vs transformers generate (eager)", 10.0),
        ("vs transformers generate (static cache, compiled)", 1.3),
        ("tokens/s", 1000.0),
    ],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-start", action="store_true", help="skip the cold and cached start-up timings")
    parser.add_argument("--out", default="artifacts/bench.json")
    parser.add_argument("--check", action="store_true", help="exit 1 when a speed target is missed")
    args = parser.parse_args(argv)

    report: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(args.device),
        "model": args.model,
        "new_tokens": args.new_tokens,
    }
    if not args.skip_start:
        with tempfile.TemporaryDirectory() as empty:
            report["start_cold_s"] = timed_start(args.model, empty)
        timed_start(args.model, None)  # make sure the shared cache is warm
        report["start_cached_s"] = timed_start(args.model, None)

    found = contenders(args)
    racers = [Result(c.name) for c in found]
    for contender in found:  # one untimed warm-up each
        started = time.perf_counter()
        contender.run(8)
        if getattr(contender, "compiled", False):
            # torch.compile specialises on shapes: compile the timed ones now, not inside a timed run.
            for streams in (1, max(STREAMS)):
                contender.aggregate(streams, args.new_tokens)
        progress(f"warmed up {contender.name} in {time.perf_counter() - started:.1f} s")
    for done in range(1, args.runs + 1):
        for contender, result in zip(found, racers):
            result.runs.append(contender.run(args.new_tokens))
        progress(f"one stream, round {done} of {args.runs}: done")
    for contender, result in zip(found, racers):
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        # The engine's 8-vs-1 ratio is a target: its stream counts alternate for several rounds, as
        # the single-stream runs do, so that one noisy minute does not decide it. Peers get one round.
        for _ in range(args.runs if result is racers[0] else 1):
            for streams in STREAMS:
                if hasattr(contender, "aggregate"):
                    result.aggregate_runs.setdefault(streams, []).append(contender.aggregate(streams, args.new_tokens))
        result.memory_mb = memory_mb(contender, args.device)
        progress(f"streams {', '.join(map(str, STREAMS))} of {contender.name}: done")

    # Grounded chat: replies with and without drafts, a five-turn conversation (prefix reuse),
    # and fresh prompts of growing length.
    llama = [c for c in found if isinstance(c, LlamaCppContender)]
    plain = [c for c in found if c.name.endswith(NO_DRAFTS)]
    report["grounded"] = grounded_row(found[:1] + plain + llama, args.runs, args.new_tokens)
    progress("grounded replies: done")
    report["conversation_ttft_s"] = conversation_row(found[:1] + llama, args.runs, 64)
    progress("the grounded conversation: done")
    fresh = FreshPrefill(args.model, args.device)
    fresh.name = found[0].name
    report["prefill_tokens_per_s"] = prefill_row([fresh] + llama, fresh.engine.count_tokens, args.runs)
    fresh.engine.close()
    progress(f"prefill of {', '.join(map(str, PREFILL_LENGTHS))}-token prompts: done")

    ours = racers[0]
    summaries = [r.summary() for r in racers]
    speed = summaries[0]["decode_tokens_per_s"]
    ratios = {f"vs {p['name']}": speed / p["decode_tokens_per_s"] for p in summaries[1:]}
    if ours.aggregate.get(8) and ours.aggregate.get(1):
        ratios["aggregate 8 streams vs 1"] = ours.aggregate[8] / ours.aggregate[1]
    ratios["tokens/s"] = speed
    turns = report["conversation_ttft_s"][ours.name]
    ratios["time to first token, turn 1 over turn 5"] = turns[0] / turns[-1]
    if llama:
        peer = llama[0].name
        ratios["vs llama.cpp, 512-token fresh prefill"] = (
            report["prefill_tokens_per_s"][ours.name][512] / report["prefill_tokens_per_s"][peer][512])
        ratios["vs llama.cpp, turn 5 time to first token"] = report["conversation_ttft_s"][peer][-1] / turns[-1]
        grounded, theirs = report["grounded"][ours.name], report["grounded"][peer]["decode_tokens_per_s"]
        ratios["vs llama.cpp, grounded replies, one stream"] = grounded["decode_tokens_per_s"] / theirs
        ratios["vs llama.cpp one stream, grounded replies, 8 streams"] = (
            grounded[f"aggregate_{max(STREAMS)}_streams_tokens_per_s"] / theirs)
    if plain:
        without = next(s for s in summaries if s["name"] == plain[0].name)["decode_tokens_per_s"]
        ratios[f"plain prompt vs {NO_DRAFTS}"] = speed / without
    report.update(contenders=summaries, ratios=ratios)
    # A target whose peer is not installed is reported as n/a, not missed.
    report["targets"] = [
        {"what": what, "target": target, "value": ratios.get(what),
         "met": None if ratios.get(what) is None else ratios[what] >= target}
        for what, target in TARGETS[args.device]
    ]
    print_table(report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")
    return 1 if args.check and any(t["met"] is False for t in report["targets"]) else 0


def machine(device: str) -> str:
    if device == "cuda":
        return f"{torch.cuda.get_device_name()} ({platform.machine()}), torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads)"


def print_table(report: dict) -> None:
    print(f"\n{report['model']} · {report['new_tokens']} new tokens · {report['machine']} · {report['date']}")
    if "start_cached_s" in report:
        print(f"start-up: cold {report['start_cold_s']:.1f} s, cached {report['start_cached_s']:.1f} s")
    header = f"{'contender':<56} {'decode tok/s':>12} {'TTFT s':>8} {'mem MB':>8}  aggregate tok/s (1/4/8 streams)"
    print(header + "\n" + "-" * len(header))
    for c in report["contenders"]:
        agg = " / ".join(f"{c['aggregate_tokens_per_s'][n]:.0f}" for n in STREAMS if n in c["aggregate_tokens_per_s"])
        print(f"{c['name']:<56} {c['decode_tokens_per_s']:>12.1f} {c['time_to_first_token_s']:>8.3f} "
              f"{c['memory_mb'] or 0:>8.0f}  {agg}")
    print(f"\ngrounded replies, greedy: decode tok/s, TTFT s, drafts kept, {max(STREAMS)} streams tok/s")
    for name, row in report["grounded"].items():
        kept = "-" if row["acceptance"] is None else f"{row['acceptance']:.0%}"
        together = row[f"aggregate_{max(STREAMS)}_streams_tokens_per_s"]
        print(f"  {name:<54} {row['decode_tokens_per_s']:>6.1f}  {row['time_to_first_token_s']:.3f}  {kept:>4}  "
              + ("-" if together is None else f"{together:.0f}"))
    print("grounded conversation, time to first token of turns 1-5 (s):")
    for name, turns in report["conversation_ttft_s"].items():
        print(f"  {name:<54} " + "  ".join(f"{t:.3f}" for t in turns))
    print("fresh prompts, prefill tokens/s at " + " / ".join(map(str, PREFILL_LENGTHS)) + " tokens:")
    for name, rates in report["prefill_tokens_per_s"].items():
        print(f"  {name:<54} " + " / ".join(f"{rates[n]:.0f}" for n in PREFILL_LENGTHS))
    for t in report["targets"]:
        value = "n/a" if t["value"] is None else f"{t['value']:.2f}"
        verdict = {True: "PASS", False: "MISS", None: "N/A "}[t["met"]]
        print(f"{verdict}  {t['what']}: {value} (target ≥ {t['target']:.2f})")


if __name__ == "__main__":
    sys.exit(main())
