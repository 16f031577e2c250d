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

from dataclasses import replace
from functools import partial
from typing import Callable, NamedTuple

import torch
from torch import nn

from .backend import BackendInfo, run_network
from .quantize import replace_linears
from .sampling import NEUTRAL, Choices, choose, choose_and_mark

BUCKETS = (1, 2, 4, 8, 16, 32)  # batch sizes with a graph of their own


def quantize_bnb(net: nn.Module, bits: int, device: torch.device) -> nn.Module:
    """Swap nn.Linear for bitsandbytes' 4-bit NF4 (bf16 compute) or 8-bit layers, on `device`."""
    import bitsandbytes as bnb

    def four_bit(linear: nn.Linear) -> nn.Module:
        layer = bnb.nn.Linear4bit(
            linear.in_features, linear.out_features, bias=linear.bias is not None,
            compute_dtype=torch.bfloat16, quant_type="nf4",
        )
        layer.weight = bnb.nn.Params4bit(linear.weight.data.to(torch.bfloat16), requires_grad=False, quant_type="nf4")
        if linear.bias is not None:
            layer.bias = nn.Parameter(linear.bias.data.to(torch.bfloat16), requires_grad=False)
        return layer.to(device)  # quantizes as it moves

    def eight_bit(linear: nn.Linear) -> nn.Module:
        layer = bnb.nn.Linear8bitLt(
            linear.in_features, linear.out_features, bias=linear.bias is not None, has_fp16_weights=False
        )
        layer.weight = bnb.nn.Int8Params(linear.weight.data.to(torch.float16), requires_grad=False, has_fp16_weights=False)
        if linear.bias is not None:
            layer.bias = nn.Parameter(linear.bias.data.to(torch.bfloat16), requires_grad=False)
        return layer.to(device)

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


# A step's inputs, a column per batch row, staged in one float32 tensor so a
# step costs one copy to the device: the token id and cache position (exact in
# float32 below 2**24), whether the row is in the step, its sampling settings (Choices).
TOKEN, POSITION, LIVE, SETTINGS = 0, 1, 2, slice(3, 3 + len(NEUTRAL))


class Bucket(NamedTuple):
    """A batch size's inputs, and its two graphs with their output: plain (argmax) and sampling."""

    staged: torch.Tensor  # [inputs, size] on the host, pinned: the next step's inputs
    inputs: torch.Tensor  # [inputs, size] on the device: what the graphs read
    replays: dict[bool, tuple[Callable[[], None], torch.Tensor]]  # plain -> (replay, chosen ids)


class GraphDecoder:
    """Replays one captured decode step per batch-size bucket; all share one memory pool.

    A step's graph holds the token choice too (sampling.choose), and marks
    the chosen tokens as seen, so a step is one copy of its inputs, one
    replay and one transfer of the chosen ids, with no other sync. Each bucket
    has two graphs: an argmax for steps whose rows are all greedy, and the
    full sampler.
    """

    def __init__(self, net: nn.Module, max_batch: int, max_seq_len: int, device: torch.device, seen: torch.Tensor):
        self.net, self.max_seq_len, self.device, self.seen = net, max_seq_len, device, seen
        # Rows outside a step (free slots, prompts still being prefilled) decode a
        # dummy token at the cache's last position, which no request ever reads: a
        # prompt is shorter than the context, and a reply ends before its token at
        # that position would be fed back. They are not live, so their choice
        # marks nothing as seen and is dropped.
        self.parked = torch.tensor([0, max_seq_len - 1, 0, *NEUTRAL], dtype=torch.float32)[:, None]
        self.buckets = sorted({b for b in BUCKETS if b < max_batch} | {max_batch})
        self.pool = torch.cuda.graph_pool_handle()
        self.graphs: dict[int, Bucket] = {}
        for size in reversed(self.buckets):  # largest first, so the smaller ones fit in its pool
            self.graphs[size] = self._capture(size)

    def _capture(self, size: int) -> Bucket:
        staged = torch.empty(self.parked.shape[0], size, pin_memory=self.device.type == "cuda")
        inputs = self.parked.repeat(1, size).to(self.device)
        rows = torch.arange(size, device=self.device)
        seen = self.seen[:size]  # rows are slots, so a view

        def step(plain: bool):
            tokens, positions = inputs[TOKEN, :, None].long(), inputs[POSITION, :, None].long()
            logits = self.net(tokens, positions, rows, self.max_seq_len, rows_are_slots=True)[:, -1]
            ids = choose(logits, Choices(inputs[SETTINGS], plain), seen)
            seen[rows, ids] |= inputs[LIVE].bool()  # a parked row's slot may hold a prompt being prefilled
            return ids

        replays = {plain: capture(partial(step, plain), self.pool) for plain in (True, False)}
        return Bucket(staged, inputs, replays)

    def __call__(self, tokens, positions, slots: list[int], choices: Choices) -> list[int]:
        """Backend.decode: one step for the given rows, given on the host; the ids chosen for `slots`, in order."""
        bucket = self.graphs[next(b for b in self.buckets if b > max(slots))]
        # The previous step's id transfer synced with the device, so its copy out of `staged` is done.
        staged = bucket.staged
        staged.copy_(self.parked.expand_as(staged))
        staged[TOKEN, slots] = tokens[:, 0].float()
        staged[POSITION, slots] = positions[:, 0].float()
        staged[LIVE, slots] = 1.0
        staged[SETTINGS, slots] = choices.settings
        bucket.inputs.copy_(staged, non_blocking=True)
        replay, ids = bucket.replays[choices.plain]
        replay()
        chosen = ids.tolist()  # read before any other replay: every graph's scratch memory is one shared pool
        return [chosen[slot] for slot in slots]


class CudaBackend:
    """The network on an NVIDIA GPU: bfloat16, bitsandbytes NF4 (or int8) weights, a CUDA graph per batch size.

    Where a graph cannot be had (turned off, 8-bit layers, a failed capture),
    steps run eagerly and info.why_not_faster says why.
    """

    def __init__(self, net, hf_model, quantization: str, max_batch: int, max_seq_len: int, device: torch.device,
                 use_graphs: bool = True):
        net = net.to(torch.bfloat16)
        bits = {"auto": 4, "4bit": 4, "8bit": 8}.get(quantization)
        words = "none"
        if bits:
            try:
                net = quantize_bnb(net, bits, device)
                words = "bitsandbytes NF4, bf16 compute" if bits == 4 else "bitsandbytes int8"
            except ImportError:
                if quantization != "auto":
                    raise ValueError("4bit and 8bit on CUDA need bitsandbytes: pip install bitsandbytes") from None
                bits, words = None, "none (bitsandbytes is not installed)"
        net = net.to(device)
        net.setup_cache(max_batch, max_seq_len, hf_model.model.rotary_emb, torch.bfloat16, device)
        self.net, self.device, self.max_batch, self.max_seq_len = net, device, max_batch, max_seq_len
        self.vocab_size = net.args.vocab_size
        self.seen: torch.Tensor | None = None
        self.graphs: GraphDecoder | None = None
        why_not = None
        if not use_graphs:
            why_not = "CUDA graphs turned off (cuda_graphs=False)"
        elif bits == 8:
            # bitsandbytes' int8 matmul syncs with the host, which a graph cannot hold.
            why_not = "bitsandbytes 8-bit layers cannot be captured in CUDA graphs; decoding eagerly"
        # Speculation would need graphs bucketed by rows, not requests, and bfloat16 products
        # that give a row the same logits whatever rows are beside it.
        self.info = BackendInfo("cuda", "bfloat16", words, why_not,
                                why_no_drafts="not yet on CUDA: the graphs are captured for one row per request")

    def bind(self, seen: torch.Tensor) -> None:
        self.seen = seen
        if self.info.why_not_faster is not None:
            return
        try:
            self.graphs = GraphDecoder(self.net, self.max_batch, self.max_seq_len, self.device, seen)
        except Exception as exc:  # any capture failure leaves a working eager engine
            torch.cuda.synchronize()
            why = f"CUDA graph capture failed, decoding eagerly: {type(exc).__name__}: {exc}"
            self.info = replace(self.info, why_not_faster=why)
            return
        self.info = replace(self.info, cuda_graphs=True, graph_batch_sizes=tuple(self.graphs.buckets))

    def prefill(self, tokens, positions, slot: int) -> torch.Tensor:
        return run_network(self.net, self.device, tokens, positions, [slot], last_only=True)[:, -1]

    def decode(self, tokens, positions, slots: list[int], choices: Choices) -> list[int]:
        if self.graphs is not None:
            return self.graphs(tokens, positions, slots, choices)
        return choose_and_mark(run_network(self.net, self.device, tokens, positions, slots)[:, -1], choices, self.seen, slots)
