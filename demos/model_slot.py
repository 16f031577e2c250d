"""The chat model as the tabs see it: loaded in the background, usable once ready.

The page must serve while the model loads, so tabs never hold an Engine
directly. Every tab asks the model the same way: wait_for_model() while it
loads, then reply(), which streams the text in batches and cancels the
reply when it is closed.
"""

from __future__ import annotations

import threading
import time
from contextlib import closing
from typing import Callable, Iterator

from serving.metrics import Metrics, outcome_of

POLL_SECONDS = 1.0  # how often a waiting request, or a tab's timer, looks at the loading model
FLUSH_SECONDS = 0.08  # text goes to the browser in small batches, not once per token


class ModelSlot:
    def __init__(self, gpu_call: Callable | None = None) -> None:
        """gpu_call: spaces.GPU on a ZeroGPU Space, which lends the GPU only for
        the duration of a decorated call; replies are decoded inside it."""
        self.engine = None
        self.error: str | None = None
        self._progress = "Waiting to load the model…"
        self._lock = threading.Lock()
        self.metrics = Metrics(lambda: self.engine.info() if self.engine is not None else None)
        self.stream: Callable[[list[dict], object], Iterator] = (gpu_call or (lambda fn: fn))(self._events)

    def _events(self, messages: list[dict], params) -> Iterator:
        """The engine's events for one reply; closing this generator cancels the reply.
        Every reply of every tab and of the API passes here, so its end is counted here."""
        from model_runtime import EngineBusy

        stats, outcome = None, "stopped"  # unless it ends by itself
        try:
            with closing(self.engine.stream(messages, params)) as events:
                for event in events:
                    stats = event.stats or stats
                    yield event
            outcome = outcome_of(stats)
        except EngineBusy:  # a remote engine says so only once asked
            outcome = "busy"
            raise
        except RuntimeError:  # an engine that stopped working
            outcome = "error"
            raise
        except ValueError:
            outcome = "refused"
            raise
        finally:
            self.metrics.finished(outcome, stats)

    def wait_for_model(self) -> Iterator[str]:
        """The loading progress, once a POLL_SECONDS, until the model is ready; ValueError if it failed."""
        while self.loading():
            yield self.status()
            time.sleep(POLL_SECONDS)
        if self.engine is None:
            raise ValueError(self.status())

    def reply(self, messages: list[dict], params) -> Iterator[tuple[str, object]]:
        """(the reply so far, the engine's stats or None until the last update), at most once a
        FLUSH_SECONDS. Closing it (Stop, a retry, a closed tab) stops the model computing."""
        reply, sent_at = "", 0.0
        with closing(self.stream(messages, params)) as events:
            for event in events:
                reply += event.text
                if event.stats is None and (time.monotonic() - sent_at < FLUSH_SECONDS or not reply):
                    continue
                sent_at = time.monotonic()
                yield reply, event.stats

    def ready(self) -> bool:
        return self.engine is not None

    def loading(self) -> bool:
        """Neither ready nor failed: worth waiting for."""
        return self.engine is None and self.error is None

    def status(self) -> str:
        """One line for a person: loading progress, the error, or what is loaded."""
        with self._lock:
            if self.engine is not None:
                return ready_line(self.engine.info())
            if self.error is not None:
                return f"The model could not be loaded: {self.error}"
            return self._progress

    def report(self, message: str) -> None:
        with self._lock:
            self._progress = message

    def load_in_background(self, load: Callable[[Callable[[str], None]], object]) -> threading.Thread:
        """Run `load(report)` on a daemon thread; it returns the Engine or raises."""

        def run() -> None:
            try:
                engine = load(self.report)
            except Exception as exc:  # shown in the page; the other tabs keep working
                with self._lock:
                    self.error = str(exc) or type(exc).__name__
                return
            with self._lock:
                self.engine = engine

        thread = threading.Thread(target=run, name="model-loader", daemon=True)
        thread.start()
        return thread


RUNS_ON = {
    "cpu-fused": "the CPU, with the project's C kernels",
    "cpu-eager": "the CPU, with PyTorch",
    "cuda": "the GPU",
}


def ready_line(info: dict) -> str:
    """What is loaded, in words a visitor knows: the model, its size, and what runs it."""
    if info.get("stopped_by"):
        return f"The model stopped working ({info['stopped_by']}). Restart the app; the other tabs still work."
    if info["backend"] == "remote":
        trouble = f" Its latest reply failed: {info['last_error']}" if info.get("last_error") else ""
        return f"Model ready: {info['model']}, served by the engine at {info['device']}.{trouble}"
    runs_on = RUNS_ON.get(info["backend"], info["device"])
    graphs = ", replaying CUDA graphs" if info.get("cuda_graphs") else ""
    return f"Model ready: {info['model']}, {info['parameters'] / 1e6:.0f}M parameters, running on {runs_on}{graphs}."

