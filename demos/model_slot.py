"""The chat model as the tabs see it: loaded in the background, usable once ready.

The page must serve while the model loads, so tabs never hold an Engine
directly; they ask the slot whether one is there yet.
"""

from __future__ import annotations

import threading
from typing import Callable


class ModelSlot:
    def __init__(self) -> None:
        self.engine = None
        self.error: str | None = None
        self._progress = "Waiting to load the model…"
        self._lock = threading.Lock()

    def ready(self) -> bool:
        return self.engine is not None

    def status(self) -> str:
        """One line for a person: loading progress, the error, or what is loaded."""
        with self._lock:
            if self.engine is not None:
                info = self.engine.info()
                return f"Model ready: {info['model']} on {info['device']} ({info['backend']})."
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
