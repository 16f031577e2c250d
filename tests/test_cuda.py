"""The engine on an NVIDIA GPU: CUDA graphs, bitsandbytes weights. Skipped without CUDA.

PLAYGROUND_GPU_MODEL names a bigger model to check as well (scripts/gpu_check.sh
sets it to a model shaped like SmolLM2-135M).
"""

from __future__ import annotations

import os

import pytest
import torch

import model_runtime
from model_runtime import GenerationParams
from model_runtime.sampling import Choices, choose
from tests.test_engine import PROMPTS, run_together

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU"),
]
GREEDY = GenerationParams(temperature=0, max_new_tokens=32)


@pytest.fixture(scope="module", params=["tiny", "shaped"])
def model_path(request, tiny_model_dir):
    if request.param == "tiny":
        return str(tiny_model_dir)
    if not os.environ.get("PLAYGROUND_GPU_MODEL"):
        pytest.skip("PLAYGROUND_GPU_MODEL is not set")
    return os.environ["PLAYGROUND_GPU_MODEL"]


def load(path, **kwargs):
    return model_runtime.load(path, device="cuda", max_batch=8, max_seq_len=512, **kwargs)


@pytest.fixture(scope="module")
def graphs_and_eager(model_path):
    graphs, eager = load(model_path, quantization="none"), load(model_path, quantization="none", cuda_graphs=False)
    yield graphs, eager
    graphs.close()
    eager.close()


def test_graphs_are_captured_at_load(graphs_and_eager):
    graphs, eager = graphs_and_eager
    info = graphs.info()
    assert info["cuda_graphs"] is True and info["graph_batch_sizes"] == [1, 2, 4, 8]
    assert info["dtype"] == "bfloat16" and info["device"].startswith("cuda")
    assert eager.info()["cuda_graphs"] is False and "turned off" in eager.info()["why_not_faster"]


def test_graph_decode_equals_eager_decode_alone(graphs_and_eager):
    graphs, eager = graphs_and_eager
    for messages in PROMPTS:
        assert graphs.complete(messages, GREEDY).token_ids == eager.complete(messages, GREEDY).token_ids


def test_graph_decode_equals_eager_decode_batched(graphs_and_eager):
    graphs, eager = graphs_and_eager
    requests = [(m, GREEDY) for m in PROMPTS * 2]  # six streams: the bucket of 8, two rows idle
    together = run_together(graphs, requests)
    for (messages, _), stream in zip(requests, together):
        assert stream.token_ids == eager.complete(messages, GREEDY).token_ids


def test_the_sampler_chooses_the_same_ids_inside_a_graph():
    logits = torch.randn(8, 49152, device="cuda", generator=torch.Generator(device="cuda").manual_seed(0)) * 3
    seen = torch.rand(8, 49152, device="cuda", generator=torch.Generator(device="cuda").manual_seed(1)) < 0.01
    rows = [
        GenerationParams(temperature=0),
        GenerationParams(temperature=0.7, top_p=0.9),
        GenerationParams(temperature=1.0, top_k=40, top_p=0.95, repetition_penalty=1.3),
        GenerationParams(temperature=0, repetition_penalty=1.2),
    ] * 2
    generators = [torch.Generator().manual_seed(i) for i in range(len(rows))]
    settings = Choices.draw(list(zip(rows, generators))).settings.cuda()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        choose(logits, Choices(settings, plain=False), seen)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        ids = choose(logits, Choices(settings, plain=False), seen)
    for _ in range(3):  # new uniform draws each step, copied into the graph's input
        choices = Choices.draw(list(zip(rows, generators)))
        settings.copy_(choices.settings)
        graph.replay()
        assert torch.equal(ids, choose(logits, choices, seen))


def test_seeded_sampling_repeats_on_the_gpu(graphs_and_eager):
    # Alone, a seeded reply repeats exactly. Batched, cuBLAS may pick other kernels for another
    # batch size, so bf16 logits (and then sampled tokens) need not match the lone reply's bits.
    graphs, _ = graphs_and_eager
    sampled = GenerationParams(temperature=0.8, top_p=0.9, top_k=40, max_new_tokens=24, seed=11)
    penalised = GenerationParams(temperature=0.7, top_p=0.95, repetition_penalty=1.3, max_new_tokens=24, seed=12)
    assert graphs.complete(PROMPTS[1], sampled).token_ids == graphs.complete(PROMPTS[1], sampled).token_ids
    for stream in run_together(graphs, [(PROMPTS[0], sampled), (PROMPTS[1], GREEDY), (PROMPTS[2], penalised)]):
        assert stream.stats.finish_reason in ("stop", "length") and stream.stats.completion_tokens > 0


def test_four_bit_weights_are_captured_too(model_path):
    pytest.importorskip("bitsandbytes")
    engine = load(model_path, quantization="auto")
    try:
        info = engine.info()
        assert info["quantization"].startswith("bitsandbytes NF4")
        assert info["cuda_graphs"] is True, info["why_not_faster"]
        done = engine.complete(PROMPTS[0], GREEDY)
        assert done.stats.completion_tokens > 0 and done.stats.finish_reason in ("stop", "length")
    finally:
        engine.close()


def test_eight_bit_decodes_eagerly_and_says_why(model_path):
    pytest.importorskip("bitsandbytes")
    engine = load(model_path, quantization="8bit")
    try:
        assert engine.info()["cuda_graphs"] is False
        assert "8-bit" in engine.info()["why_not_faster"]
        assert engine.complete(PROMPTS[0], GREEDY).stats.completion_tokens > 0
    finally:
        engine.close()
