"""Fixtures shared by the suite: a tiny model, an engine on it, and the running app."""

from __future__ import annotations

import os
import time

import pytest

from tests.tiny_model import build_tiny_model

PACE_SECONDS = 0.02  # per decode step, about the real model's speed on a small CPU


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    # Converted models go to a per-run folder unless the caller points at a warm one.
    os.environ.setdefault("PLAYGROUND_CACHE_DIR", str(tmp_path_factory.mktemp("model-cache")))
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_model_of(tmp_path_factory):
    """folder(architecture): a tiny model of one of tests.tiny_model.ARCHITECTURES, built once."""
    built = {}

    def folder(architecture: str):
        if architecture not in built:
            built[architecture] = build_tiny_model(tmp_path_factory.mktemp("tiny"), architecture=architecture)
        return built[architecture]

    return folder


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir):
    import model_runtime

    engine = model_runtime.load(str(tiny_model_dir), quantization="none", max_batch=4, max_seq_len=256)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def inline_engine(tiny_model_dir):
    """The tiny model with no scheduler thread (background=False) and two slots."""
    import model_runtime

    engine = model_runtime.load(str(tiny_model_dir), quantization="none", max_batch=2, max_seq_len=1024, background=False)
    yield engine
    engine.close()


def serve_app(engine, concurrency: int, **queue_options):
    """The whole app over `engine`, served on a free loopback port: (demo, url, slot); close the demo after."""
    from app import build_app, launch
    from demos.model_slot import ModelSlot

    slot = ModelSlot()
    slot.engine = engine
    demo = build_app(slot, concurrency=concurrency)
    demo.queue(**queue_options)
    _, url, _ = launch(demo, slot, server_name="127.0.0.1", server_port=None, quiet=True)
    return demo, url, slot


@pytest.fixture(scope="session")
def running_app(tiny_engine):
    """The whole app on the tiny model, served on a free port, with /v1, /metrics and MCP: (url, slot)."""
    demo, url, slot = serve_app(tiny_engine, 4, max_size=16, default_concurrency_limit=4)
    yield url, slot
    demo.close()


@pytest.fixture(scope="session")
def roomy_engine(tiny_model_dir):
    """The tiny model with a context as long as the embedded model's chat uses, so the course's notes fit."""
    import model_runtime

    engine = model_runtime.load(str(tiny_model_dir), quantization="none", max_batch=2, max_seq_len=2048)
    yield engine
    engine.close()


@pytest.fixture
def roomy_app(running_app, roomy_engine, monkeypatch):
    """running_app answering on roomy_engine, for as long as one test runs."""
    monkeypatch.setattr(running_app[1], "engine", roomy_engine)
    return running_app


@pytest.fixture
def paced_engine(tiny_engine, monkeypatch):
    """The tiny model answers in a blink; paced like the real model, a reply can be stopped midway."""
    decode = tiny_engine.backend.decode

    def paced_decode(*args, **kwargs):
        time.sleep(PACE_SECONDS)
        return decode(*args, **kwargs)

    monkeypatch.setattr(tiny_engine.backend, "decode", paced_decode)
    return tiny_engine
