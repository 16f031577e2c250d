"""The engine's figures in Prometheus's text format, for /metrics.

Counters and histograms are fed by the model slot as each reply ends (every
tab and every API request goes through it); the gauges are read from the
engine's info() when Prometheus scrapes. Names follow llama-server's
(`llamacpp:prompt_tokens_total` is `playground_prompt_tokens_total` here) where
it has one.
"""

from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

disable_created_metrics()  # the *_created series only say when the app started

PREFIX = "playground"
OUTCOMES = ("done", "stopped", "refused", "busy", "error")
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32)
SPEED_BUCKETS = (1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 250, 500)


class Metrics:
    def __init__(self, engine_info: Callable[[], dict | None]):
        """engine_info: the loaded engine's info(), or None while it loads."""
        self.registry = CollectorRegistry()
        self.requests = Counter(f"{PREFIX}_requests", "Replies by how they ended: done, stopped (by the client), "
                                "refused (bad input), busy (queue full) or error", ["outcome"], registry=self.registry)
        for outcome in OUTCOMES:
            self.requests.labels(outcome)  # every outcome reads 0 before it first happens
        self.prompt_tokens = Counter(f"{PREFIX}_prompt_tokens", "Prompt tokens read", registry=self.registry)
        self.predicted_tokens = Counter(f"{PREFIX}_tokens_predicted", "Tokens generated", registry=self.registry)
        self.ttft = Histogram(f"{PREFIX}_time_to_first_token_seconds", "From a request's arrival to its first token, "
                              "queueing included", buckets=TTFT_BUCKETS, registry=self.registry)
        self.speed = Histogram(f"{PREFIX}_decode_tokens_per_second", "Each reply's decode speed after its first token",
                               buckets=SPEED_BUCKETS, registry=self.registry)
        self.registry.register(EngineGauges(engine_info))

    def finished(self, outcome: str, stats=None) -> None:
        """One reply ended with `outcome` (one of OUTCOMES); stats is the engine's, when it got that far."""
        self.requests.labels(outcome).inc()
        if stats is None:
            return
        self.prompt_tokens.inc(stats.prompt_tokens)
        self.predicted_tokens.inc(stats.completion_tokens)
        if stats.time_to_first_token_s is not None:
            self.ttft.observe(stats.time_to_first_token_s)
        if stats.decode_tokens_per_s is not None:
            self.speed.observe(stats.decode_tokens_per_s)

    def text(self) -> bytes:
        return generate_latest(self.registry)


def outcome_of(stats) -> str:
    return {"cancelled": "stopped", "error": "error"}.get(stats.finish_reason, "done")


class EngineGauges:
    """What the engine holds right now, read at each scrape."""

    def __init__(self, engine_info: Callable[[], dict | None]):
        self.engine_info = engine_info

    def collect(self):
        info = self.engine_info() or {}
        gauges = {
            "model_loaded": ("1 once the model is loaded", 1 if info else 0),
            "requests_processing": ("Requests holding a KV-cache slot", info.get("active_requests", 0)),
            "requests_deferred": ("Requests waiting for a slot", info.get("waiting_requests", 0)),
            "slots_total": ("KV-cache slots: replies decoded together", info.get("max_batch", 0)),
            "kv_cache_tokens": ("Tokens held in the KV cache by active requests", info.get("kv_cache_tokens", 0)),
            "kv_cache_usage_ratio": ("Share of the KV cache held by active requests",
                                     info.get("kv_cache_tokens", 0) / info["kv_cache_capacity"] if info.get("kv_cache_capacity") else 0),
        }
        for name, (help_text, value) in gauges.items():
            yield GaugeMetricFamily(f"{PREFIX}_{name}", help_text, value=value)
        yield GaugeMetricFamily(f"{PREFIX}_scheduler_stopped", "1 if the engine's scheduler died: restart the app",
                                value=1 if info.get("stopped_by") else 0)
        yield CounterMetricFamily(f"{PREFIX}_engine_step_faults", "Engine steps that raised; only their requests ended",
                                  value=info.get("step_faults", 0))
