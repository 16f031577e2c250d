"""On a ZeroGPU Space the GPU is lent only inside calls decorated with spaces.GPU.

There is no ZeroGPU here. A stand-in for spaces.GPU keeps the two rules of the
real one that can break the app: a call's arguments and everything it yields
are pickled (they cross into a worker process and back), and the work runs
outside the server's own threads. Replies must come back whole and unchanged.
"""

from __future__ import annotations

import pickle
import queue
import subprocess
import sys
import threading
from pathlib import Path

import app
from demos.model_slot import ModelSlot
from tests.test_app import chat_args, expected_reply, launch


class LentGPU:
    """Runs a decorated generator on a worker thread, pickling what goes in and out."""

    MAX_ARGUMENT_BYTES = 100_000  # a reply's request, not a model

    def __init__(self):
        self.calls = 0

    def __call__(self, generator_function):
        def call(*args, **kwargs):
            self.calls += 1
            sent = pickle.dumps((args, kwargs))
            assert len(sent) < self.MAX_ARGUMENT_BYTES, "GPU-call arguments are pickled: pass the request, not the engine"
            results: queue.Queue = queue.Queue()

            def worker():
                try:
                    worker_args, worker_kwargs = pickle.loads(sent)
                    for item in generator_function(*worker_args, **worker_kwargs):
                        results.put(("item", pickle.dumps(item)))
                    results.put(("end", None))
                except Exception as exc:
                    results.put(("error", exc))

            threading.Thread(target=worker, daemon=True).start()
            while True:
                kind, payload = results.get(timeout=120)
                if kind == "end":
                    return
                if kind == "error":
                    raise payload
                yield pickle.loads(payload)

        return call


def test_the_command_line_leaves_torch_to_the_model_loader():
    # `spaces` must be imported before torch; the app imports it after reading its arguments.
    code = "import sys, app; app.parse_args(['--quantization', '8bit']); print('torch' in sys.modules)"
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr


def test_on_zero_gpu_the_engine_runs_no_thread_of_its_own(monkeypatch, tiny_model_dir):
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert app.on_zero_gpu()
    args = app.parse_args(["--model", str(tiny_model_dir), "--concurrency", "2"])
    engine = app.load_model(args)(lambda _: None)
    try:
        assert engine.info()["scheduler"].startswith("in the caller")
    finally:
        engine.close()
    monkeypatch.setenv("SPACES_ZERO_GPU", "false")
    assert not app.on_zero_gpu()


def test_chat_and_eli5_replies_are_decoded_inside_the_gpu_call(inline_engine, tiny_engine):
    lent = LentGPU()
    slot = ModelSlot(lent)
    slot.engine = inline_engine
    demo, client = launch(slot)
    try:
        reply, stats, _ = client.predict(*chat_args("What is a port?"), api_name="/chat")
        assert reply == expected_reply(tiny_engine, "What is a port?")
        assert "tokens/s" in stats and lent.calls == 1
        analogy = client.predict("ports", api_name="/eli5_fresh_analogy")
        assert len(analogy) > 40 and lent.calls == 2
        assert inline_engine.info()["active_requests"] == 0
    finally:
        demo.close()
