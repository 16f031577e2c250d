"""bitsandbytes layers as the GPU path builds them, run on a CPU.

bitsandbytes has CPU kernels for its 4-bit and 8-bit layers, so CI checks
that cuda_graphs.CudaBackend swaps every linear layer for one, that the network's
logits stay within each format's rounding, and that the engine decodes with
them. Their CUDA kernels, and capture in graphs, are tests/test_cuda.py's.
"""

from __future__ import annotations

import bitsandbytes as bnb
import pytest
import torch

from model_runtime import GenerationParams, cuda_graphs
from model_runtime.engine import Engine, ModelFacts
from model_runtime.loading import load_pretrained
from model_runtime.model import from_hf
from tests.test_engine import PROMPTS, run_together

CPU = torch.device("cpu")
LAYERS = {"4bit": bnb.nn.Linear4bit, "8bit": bnb.nn.Linear8bitLt}


def prepared(model_dir, quantization: str):
    """The GPU backend, without graphs, on a CPU; the tokenizer and what the engine keeps of the model."""
    hf_model, tokenizer, name = load_pretrained(str(model_dir))
    backend = cuda_graphs.CudaBackend(from_hf(hf_model), hf_model, quantization, 2, 128, CPU, use_graphs=False)
    return backend, tokenizer, ModelFacts.of(hf_model, tokenizer, name)


def prompt_logits(net) -> torch.Tensor:
    with torch.inference_mode():
        return net(torch.tensor([[5, 17, 33, 90, 120, 7]]), torch.arange(6)[None], torch.tensor([0]), 6)


@pytest.mark.parametrize("quantization, within", [("4bit", 0.25), ("8bit", 0.03)])
def test_every_linear_layer_is_swapped_and_the_logits_stay_within_its_rounding(tiny_model_dir, quantization, within):
    reference, (backend, *_) = prepared(tiny_model_dir, "none")[0].net, prepared(tiny_model_dir, quantization)
    net = backend.net
    assert backend.info.quantization.startswith("bitsandbytes")
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 4 * len(net.layers) + 1  # qkv, out, gate-and-up, down; the head
    assert all(isinstance(m, LAYERS[quantization]) for m in linears)
    expected, got = prompt_logits(reference), prompt_logits(net)
    assert float((got - expected).norm() / expected.norm()) < within


def test_the_engine_decodes_batched_replies_with_nf4_weights(tiny_model_dir):
    backend, tokenizer, facts = prepared(tiny_model_dir, "auto")
    assert backend.info.quantization == "bitsandbytes NF4, bf16 compute"
    engine = Engine(backend, tokenizer, facts=facts)
    greedy = GenerationParams(temperature=0, max_new_tokens=12)
    sampled = GenerationParams(temperature=0.8, top_p=0.9, repetition_penalty=1.3, max_new_tokens=12, seed=5)
    try:
        # The tiny model's end-of-turn row scores 0, so replies run to their limit.
        for stream in run_together(engine, [(PROMPTS[0], greedy), (PROMPTS[1], sampled), (PROMPTS[2], greedy)]):
            assert stream.stats.finish_reason == "length", stream.stats.error
            assert len(stream.token_ids) == 12
        assert engine.complete(PROMPTS[0], greedy).token_ids == engine.complete(PROMPTS[0], greedy).token_ids
    finally:
        engine.close()
