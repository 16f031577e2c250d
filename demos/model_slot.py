"""The chat model as the tabs see it: loaded in the background, usable once ready.

The page must serve while the model loads, so tabs never hold an Engine
directly; they ask the slot whether one is there yet, and stream replies
through it.
"""

from __future__ import annotations

import threading
from contextlib import closing
from typing import Callable, Iterator


class ModelSlot:
    def __init__(self, gpu_call: Callable | None = None) -> None:
        """gpu_call: spaces.GPU on a ZeroGPU Space, which lends the GPU only for
        the duration of a decorated call; replies are decoded inside it."""
        self.engine = None
        self.error: str | None = None
        self._progress = "Waiting to load the model…"
        self._lock = threading.Lock()
        self.stream: Callable[[list[dict], object], Iterator] = (gpu_call or (lambda fn: fn))(self._events)

    def _events(self, messages: list[dict], params) -> Iterator:
        """The engine's events for one reply; closing this generator cancels the reply."""
        with closing(self.engine.stream(messages, params)) as events:
            yield from events

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
    runs_on = RUNS_ON.get(info["backend"], info["device"])
    graphs = ", replaying CUDA graphs" if info.get("cuda_graphs") else ""
    return f"Model ready: {info['model']}, {info['parameters'] / 1e6:.0f}M parameters, running on {runs_on}{graphs}."

