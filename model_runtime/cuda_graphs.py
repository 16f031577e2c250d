"""Preparing the network for an NVIDIA GPU: bfloat16, bitsandbytes weights, CUDA graphs.

A 135M-parameter model launches a few hundred small kernels per token, so a
GPU decode step is bound by launch overhead, not memory bandwidth. Capturing
the whole step once per batch size and replaying it removes that overhead.

What makes a step capturable: every input lives in a static buffer; the
cache is read over its full length (a mask hides positions a request has not
reached), so shapes never change; each batch row is the cache slot of the same
number, so cache reads are views; and nothing syncs with the host inside, the
token choice included: its random numbers are inputs, drawn on the host.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import torch
from torch import nn

from .quantize import replace_linears
from .sampling import NEUTRAL, Choices, choose

BUCKETS = (1, 2, 4, 8, 16, 32)  # batch sizes with a graph of their own


def quantize_bnb(net: nn.Module, bits: int) -> nn.Module:
    """Swap nn.Linear for bitsandbytes' 4-bit NF4 (bf16 compute) or 8-bit layers, on the GPU."""
    import bitsandbytes as bnb

    def four_bit(linear: nn.Linear) -> nn.Module:
        layer = bnb.nn.Linear4bit(
            linear.in_features, linear.out_features, bias=linear.bias is not None,
            compute_dtype=torch.bfloat16, quant_type="nf4",
        )
        layer.weight = bnb.nn.Params4bit(linear.weight.data.to(torch.bfloat16), requires_grad=False, quant_type="nf4")
        if linear.bias is not None:
            layer.bias = nn.Parameter(linear.bias.data.to(torch.bfloat16), requires_grad=False)
        return layer.cuda()  # quantizes as it moves

    def eight_bit(linear: nn.Linear) -> nn.Module:
        layer = bnb.nn.Linear8bitLt(
            linear.in_features, linear.out_features, bias=linear.bias is not None, has_fp16_weights=False
        )
        layer.weight = bnb.nn.Int8Params(linear.weight.data.to(torch.float16), requires_grad=False, has_fp16_weights=False)
        if linear.bias is not None:
            layer.bias = nn.Parameter(linear.bias.data.to(torch.bfloat16), requires_grad=False)
        return layer.cuda()

    replace_linears(net, four_bit if bits == 4 else eight_bit)
    return net


def capture(step: Callable[[], torch.Tensor], pool) -> tuple[Callable[[], None], torch.Tensor]:
    """Capture `step` in a CUDA graph; return its replay and the tensor each replay refills."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), torch.inference_mode():
        for _ in range(2):  # lazy initialisation (cuBLAS handles, bnb state) off the graph
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.cuda.graph(graph, pool=pool):
        out = step()
    return graph.replay, out


class Bucket(NamedTuple):
    """A batch size's static inputs, and its two graphs with their output: plain (argmax) and sampling."""

    tokens: torch.Tensor
    positions: torch.Tensor
    settings: torch.Tensor
    replays: dict[bool, tuple[Callable[[], None], torch.Tensor]]  # plain -> (replay, chosen ids)


class GraphDecoder:
    """Replays one captured decode step per batch-size bucket; all share one memory pool.

    A step's graph holds the token choice too (sampling.choose), so a step is
    one replay and one transfer of the chosen ids. Each bucket has two graphs:
    an argmax for steps whose rows are all greedy, and the full sampler.
    """

    def __init__(self, net: nn.Module, max_batch: int, max_seq_len: int, device: torch.device):
        self.net, self.max_seq_len, self.device = net, max_seq_len, device
        self.buckets = sorted({b for b in BUCKETS if b < max_batch} | {max_batch})
        self.pool = torch.cuda.graph_pool_handle()
        self.graphs: dict[int, Bucket] = {}
        for size in reversed(self.buckets):  # largest first, so the smaller ones fit in its pool
            self.graphs[size] = self._capture(size)

    def _capture(self, size: int) -> Bucket:
        tokens = torch.zeros(size, 1, dtype=torch.long, device=self.device)
        positions = torch.zeros(size, 1, dtype=torch.long, device=self.device)
        settings = torch.tensor(NEUTRAL, device=self.device)[:, None].repeat(1, size)
        slots = torch.arange(size, device=self.device)
        seen = self.net.seen[:size]  # rows are slots, so a view

        def step(plain: bool):
            logits = self.net(tokens, positions, slots, self.max_seq_len, rows_are_slots=True)[:, -1]
            return choose(logits, Choices(settings, plain), seen)

        replays = {plain: capture(partial(step, plain), self.pool) for plain in (True, False)}
        return Bucket(tokens, positions, settings, replays)

    def __call__(self, tokens, positions, slots, kv_len, rows_are_slots, choices) -> torch.Tensor:
        """Decode one step for the given rows; the result's id i belongs to slots[i]."""
        size = next(b for b in self.buckets if b > int(slots.max()))
        bucket = self.graphs[size]
        # Rows outside this step (free slots, prompts still being prefilled)
        # decode a dummy token at the cache's last position, which no request
        # ever reads: a prompt is shorter than the context, and a reply ends
        # before its token at that position would be fed back. What they
        # choose is dropped, and their settings are whatever was there.
        bucket.tokens.zero_()
        bucket.positions.fill_(self.max_seq_len - 1)
        bucket.tokens[slots] = tokens
        bucket.positions[slots] = positions
        bucket.settings[:, slots] = choices.settings
        replay, ids = bucket.replays[choices.plain]
        replay()
        # A copy, taken before any other replay: every graph's scratch memory is one shared pool.
        return ids[slots]


def prepare(net, hf_model, quantization: str, max_batch: int, max_seq_len: int, device: torch.device, use_graphs=True):
    details = {"backend": "cuda", "dtype": "bfloat16", "cuda_graphs": False, "why_not_faster": None}
    net = net.to(torch.bfloat16)
    bits = {"auto": 4, "4bit": 4, "8bit": 8}.get(quantization)
    if bits:
        try:
            net = quantize_bnb(net, bits)
            details["quantization"] = "bitsandbytes NF4, bf16 compute" if bits == 4 else "bitsandbytes int8"
        except ImportError:
            if quantization != "auto":
                raise ValueError("4bit and 8bit on CUDA need bitsandbytes: pip install bitsandbytes") from None
            bits = None
            details["quantization"] = "none (bitsandbytes is not installed)"
    else:
        details["quantization"] = "none"
    net = net.to(device)
    net.setup_cache(max_batch, max_seq_len, hf_model.model.rotary_emb, torch.bfloat16, device)

    if not use_graphs:
        details["why_not_faster"] = "CUDA graphs turned off (cuda_graphs=False)"
        return net, None, None, details
    if bits == 8:
        # bitsandbytes' int8 matmul syncs with the host, which a graph cannot hold.
        details["why_not_faster"] = "bitsandbytes 8-bit layers cannot be captured in CUDA graphs; decoding eagerly"
        return net, None, None, details
    try:
        decoder = GraphDecoder(net, max_batch, max_seq_len, device)
    except Exception as exc:  # any capture failure leaves a working eager engine
        torch.cuda.synchronize()
        details["why_not_faster"] = f"CUDA graph capture failed, decoding eagerly: {type(exc).__name__}: {exc}"
        return net, None, None, details
    details.update(cuda_graphs=True, graph_batch_sizes=decoder.buckets)
    return net, None, decoder, details
