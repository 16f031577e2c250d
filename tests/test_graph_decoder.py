"""The CUDA-graph decoder's bookkeeping, run on a CPU: each "graph" is its step, replayed eagerly.

Buckets, static input buffers, rows parked outside a step, each row's
sampling settings and reading the chosen ids back are the decoder's own
code; only capture itself needs a GPU (tests/test_cuda.py covers it there).
"""

from __future__ import annotations

import pytest
import torch

import model_runtime
from model_runtime import GenerationParams, cuda_graphs
from model_runtime.cuda_graphs import POSITION
from model_runtime.sampling import Choices
from tests.test_engine import PROMPTS, run_together


def replayed_eagerly(step, pool):
    with torch.inference_mode():
        out = step()
    return (lambda: out.copy_(step())), out


@pytest.fixture(scope="module")
def graph_engine(tiny_model_dir):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cuda_graphs, "capture", replayed_eagerly)
        patch.setattr(torch.cuda, "graph_pool_handle", lambda: None)
        engine = model_runtime.load(str(tiny_model_dir), quantization="none", max_batch=4, max_seq_len=256)
        backend = engine.backend
        backend.decode = cuda_graphs.GraphDecoder(backend.net, 4, 256, backend.device, backend.seen)
    assert backend.decode.buckets == [1, 2, 4]
    yield engine
    engine.close()


def test_replies_through_the_buckets_match_the_eager_engine(graph_engine, tiny_engine):
    # Replies of different lengths: when the shortest ends, the others' slots no longer start at 0,
    # and the free slot parks in its bucket while they decode.
    requests = [
        (PROMPTS[0], GenerationParams(temperature=0, max_new_tokens=6)),
        (PROMPTS[1], GenerationParams(temperature=0.8, top_p=0.9, repetition_penalty=1.2, max_new_tokens=20, seed=3)),
        (PROMPTS[2], GenerationParams(temperature=0, max_new_tokens=30)),
    ]
    for stream, (messages, params) in zip(run_together(graph_engine, requests), requests, strict=True):
        assert stream.token_ids == tiny_engine.complete(messages, params).token_ids


def test_a_lone_request_in_a_high_slot_uses_the_bucket_that_holds_it(graph_engine):
    decoder, model, seen = graph_engine.backend.decode, graph_engine.backend.net, graph_engine.backend.seen
    before = [layer.attention.k_cache.clone() for layer in model.layers]
    seen.zero_()
    with torch.inference_mode():
        greedy = Choices.draw([(GenerationParams(temperature=0), torch.Generator())])
        ids = decoder(torch.tensor([[7]]), torch.tensor([[3]]), [2], greedy)
    assert len(ids) == 1
    assert decoder.graphs[4].inputs[POSITION].tolist() == [255, 255, 3, 255]
    for layer, cache in zip(model.layers, before):
        changed = (layer.attention.k_cache != cache).any(-1).any(1)  # [slot, position]
        written = {tuple(at) for at in changed.nonzero().tolist()}
        assert (2, 3) in written, "the step writes its own position"
        assert written <= {(0, 255), (1, 255), (2, 3), (3, 255)}, "rows outside the step write only the last position"
    assert seen.nonzero().tolist() == [[2, ids[0]]], "only the step's own row marks its choice as seen"
