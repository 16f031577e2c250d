"""What the engine asks of a backend, and what the tabs ask of an engine.

The engine (engine.py) decides which requests' tokens go into a step; a
backend runs the network on them. It holds the weights in the format it
chose and a KV cache of `max_batch` slots of `max_seq_len` positions, on its
device. Its inputs come from the host, and what it returns is on the host or
one transfer away. The backends:

- cpu.CpuBackend: the C kernels for grouped weights, or PyTorch (model.py,
  the reference every other path is tested against);
- cuda_graphs.CudaBackend: bitsandbytes weights, a captured CUDA graph per
  batch size, or eager PyTorch.

A new backend is a class with the members of `Backend`, and its branch in
`load()` (model_runtime/__init__.py).

An engine somewhere else (vLLM, llama-server, NIM, Ollama or another copy of
this app, reached over the OpenAI API) is not a Backend: it keeps its own
cache and sampler and sends text, not logits. It stands in for the whole
Engine instead, behind `ChatEngine`, which is all the tabs use
(demos/model_slot.py holds one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol

import torch

from .sampling import Choices


@dataclass(frozen=True)
class BackendInfo:
    """How a backend runs the network, as Engine.info() reports it."""

    name: str  # "cpu-fused", "cpu-eager" or "cuda"
    dtype: str  # of the activations
    quantization: str  # the weights, in words
    why_not_faster: str | None = None
    why_no_drafts: str | None = None  # None: check() takes a request's drafted tokens (speculate.py)
    cuda_graphs: bool = False
    graph_batch_sizes: tuple[int, ...] = ()


class Backend(Protocol):
    info: BackendInfo
    device: torch.device
    max_batch: int
    max_seq_len: int
    vocab_size: int

    def bind(self, seen: torch.Tensor) -> None:
        """Called once, before any step, with the engine's [max_batch, vocab] memory of the
        tokens each slot has seen (for the repetition penalty). A backend that captures
        its decode step (CUDA graphs) does it here, over this tensor."""

    def prefill(self, tokens: torch.Tensor, positions: torch.Tensor, slot: int) -> torch.Tensor:
        """Write a prompt chunk (tokens and positions [1, T]) into `slot`'s cache;
        return the float32 logits [1, vocab] of its last token."""

    def decode(self, tokens: torch.Tensor, positions: torch.Tensor, slots: list[int], choices: Choices) -> list[int]:
        """One decode step: tokens and positions [rows, 1] on the host, one row per slot.
        Each row's next token, chosen by `choices` and marked as seen."""

    def check(self, tokens: torch.Tensor, positions: torch.Tensor, slots: list[int]) -> torch.Tensor:
        """A decode step whose rows may share a slot at consecutive positions (a request's newest
        token, then its drafted ones); the float32 logits [rows, vocab]. Each row's logits must
        be what a step of its own would give, or drafts would change greedy replies: a backend
        that cannot promise it sets info.why_no_drafts and need not have this method."""


class ChatEngine(Protocol):
    """What the tabs use of an engine: Engine, or one reached over the network."""

    max_seq_len: int

    def stream(self, messages: list[dict], params=None) -> Iterator:
        """Events with the text so far; the last one carries the Stats. Closing it cancels."""

    def count_tokens(self, messages: list[dict]) -> int: ...

    def info(self) -> dict: ...

    def close(self) -> None: ...


def run_network(net, device: torch.device, tokens, positions, slots: list[int], last_only: bool = False):
    """model.py's forward for rows given on the host: logits [rows, T or 1, vocab].

    The cache is read up to the furthest position in the step, and as views
    when the rows are the slots 0, 1, 2, ... in order.
    """
    kv_len = int(positions.max()) + 1
    rows_are_slots = slots == list(range(len(slots)))
    tokens, positions, rows = tokens.to(device), positions.to(device), torch.tensor(slots, device=device)
    return net(tokens, positions, rows, kv_len, last_only=last_only, rows_are_slots=rows_are_slots)
