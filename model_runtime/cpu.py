"""Preparing the network for a CPU: float32 activations, the checkpoint's own 4- and 8-bit groups by default."""

from __future__ import annotations

from pathlib import Path

import torch

from . import native
from .backend import BackendInfo, run_network
from .loading import cache_dir
from .quantize import CPU_WEIGHTS, PACKING_VERSION, Float16Linear, GroupedLinear, quantize_cpu
from .sampling import Choices, choose_and_mark

def weight_format(quantization: str) -> str | None:
    """The CPU_WEIGHTS choice (quantize.py) for a `quantization` choice; None keeps float32."""
    if native.why_unavailable() is None:
        # Our kernels: a GGUF checkpoint's exact values in its own bytes (docs/PERFORMANCE.md).
        return {"auto": "lossless", "4bit": "q4", "8bit": "q8"}.get(quantization)
    if quantization == "auto":
        # float16 keeps the float model's greedy tokens; builds without fbgemm (ARM) use int4.
        return "float16" if Float16Linear.available() else "int4"
    return {"4bit": "int4", "8bit": "int8"}.get(quantization)


class FusedForward:
    """The network's forward pass in C, for prompt chunks and decode steps alike.

    At a few tokens a step, each of the thirty-odd PyTorch operators of a
    layer costs more to dispatch than to compute; here a layer is its four
    matrix products plus three calls (attention, two residual-add-and-norms)
    and one for the gated activation. When every layer matrix is grouped, all
    layers run in one C call (native.decoder_layers), whose array of layers is
    built here once: it holds the addresses of the weights and of the KV
    cache, which setup_cache allocated before. Otherwise (float16 layers)
    the same calls are made from Python, layer by layer. Every token is a row
    with its own request's slot and position. model.py stays the reference
    these steps are tested against, and the path where the C kernels do not run.
    """

    def __init__(self, net):
        self.net = net
        self.cos, self.sin = net.cos_table.contiguous(), net.sin_table.contiguous()
        matrices = [(b.attention.wqkv, b.attention.wo, b.feed_forward.w13, b.feed_forward.w2) for b in net.layers]
        self.layers = None
        if all(isinstance(m, GroupedLinear) for four in matrices for m in four):
            after = [b.attention_norm.weight for b in net.layers[1:]] + [net.norm.weight]
            self.layers = (native.Layer * len(net.layers))(*(
                native.Layer(*map(native.matrix, four), b.ffn_norm.weight.data_ptr(), norm.data_ptr(),
                             b.attention.k_cache.data_ptr(), b.attention.v_cache.data_ptr())
                for four, b, norm in zip(matrices, net.layers, after)
            ))

    @staticmethod
    def fits(net) -> bool:
        return net.args.head_dim % 8 == 0 and net.args.n_heads % net.args.n_kv_heads == 0

    def __call__(self, tokens, positions, slots: list[int], last_only=False) -> torch.Tensor:
        """Tokens and positions [B, T], the cache slot of each of the B rows; logits [B, T or 1, vocab].

        Each row's position says how far it attends, so unlike the network it needs no kv_len.
        """
        net, eps = self.net, self.net.args.norm_eps
        batch, length = tokens.shape
        positions = positions.reshape(-1).contiguous()
        slots = torch.tensor(slots).repeat_interleave(length).contiguous()
        if int(positions.max()) >= self.cos.shape[0] or int(slots.max()) >= net.layers[0].attention.k_cache.shape[0]:
            raise ValueError("a position or slot is outside the KV cache")

        x = net.tok_embeddings(tokens.reshape(-1))  # [rows, dim], the residual stream
        h = torch.empty_like(x)
        native.add_rms_norm(x, None, net.layers[0].attention_norm.weight, eps, h)
        if self.layers is not None:
            native.decoder_layers(self.layers, batch * length >= native.MATMUL_ROWS, net.args.n_heads, eps, self.cos,
                                  self.sin, positions, slots, net.layers[0].attention.k_cache, x, h)
        else:
            self._layer_by_layer(x, h, positions, slots, batch, length)
        h = h.view(batch, length, -1)
        return net.output(h[:, -1:] if last_only else h).float()

    def _layer_by_layer(self, x, h, positions, slots, batch: int, length: int) -> None:
        """decoder_layers' calls, made from Python, for networks with layers it does not hold."""
        net, eps = self.net, self.net.args.norm_eps

        def linear(layer, rows):  # as [B, T, features]: a decode step's rows keep the batch-invariant kernel
            return layer(rows.view(batch, length, -1)).view(batch * length, -1)

        for i, layer in enumerate(net.layers):
            att, ffn = layer.attention, layer.feed_forward
            mixed = native.attention(linear(att.wqkv, h), self.cos, self.sin, positions, slots,
                                     att.k_cache, att.v_cache, att.n_heads)
            native.add_rms_norm(x, linear(att.wo, mixed), layer.ffn_norm.weight, eps, h)
            after = net.layers[i + 1].attention_norm.weight if i + 1 < len(net.layers) else net.norm.weight
            native.add_rms_norm(x, linear(ffn.w2, native.silu_mul(linear(ffn.w13, h))), after, eps, h)


def saved_packing(folder: str, weights: str) -> Path | None:
    """Where a converted GGUF keeps its packed grouped weights; None for other checkpoints.

    The converted folder is named by the GGUF file's hash, so what it holds
    cannot go stale; a hub or local folder could change under the same name.
    """
    folder = Path(folder)
    if not CPU_WEIGHTS[weights].grouped or folder.parent != cache_dir() / "converted":
        return None
    return folder / f"packed-{weights}-{PACKING_VERSION}.safetensors"


class CpuBackend:
    """The network on a CPU: float32 activations, weights in the format `quantization` asks for.

    Any compact format runs in C (FusedForward) where the kernels are built;
    "none" stays model.py, the reference path.
    """

    device = torch.device("cpu")

    def __init__(self, net, hf_model, quantization: str, max_batch: int, max_seq_len: int):
        weights = weight_format(quantization)
        if weights:
            net = quantize_cpu(net, weights, saved_packing(hf_model.name_or_path, weights))
        net.setup_cache(max_batch, max_seq_len, hf_model.model.rotary_emb, torch.float32, self.device)
        self.net, self.max_batch, self.max_seq_len, self.vocab_size = net, max_batch, max_seq_len, net.args.vocab_size
        self.fused = FusedForward(net) if weights and native.why_unavailable() is None and FusedForward.fits(net) else None
        self.seen: torch.Tensor | None = None
        why_not_faster = "CUDA graphs need an NVIDIA GPU; none is available here"
        if problem := native.why_unavailable():
            why_not_faster += f"; the C kernels for grouped weights are off: {problem}"
        why_no_drafts = None if self.fused else (
            "drafts are checked by the C kernels, which compute each row on its own; PyTorch's products "
            "may round a row differently beside others, so a draft could change a greedy reply")
        self.info = BackendInfo("cpu-fused" if self.fused else "cpu-eager", "float32", describe(net, weights),
                                why_not_faster, why_no_drafts)

    def bind(self, seen: torch.Tensor) -> None:
        self.seen = seen

    def logits(self, tokens, positions, slots: list[int], last_only: bool = False) -> torch.Tensor:
        if self.fused is not None:
            return self.fused(tokens, positions, slots, last_only)
        return run_network(self.net, self.device, tokens, positions, slots, last_only)

    def prefill(self, tokens, positions, slot: int) -> torch.Tensor:
        return self.logits(tokens, positions, [slot], last_only=True)[:, -1]

    def decode(self, tokens, positions, slots: list[int], choices: Choices) -> list[int]:
        return choose_and_mark(self.logits(tokens, positions, slots)[:, -1], choices, self.seen, slots)

    def check(self, tokens, positions, slots: list[int]) -> torch.Tensor:
        # Each row's logits are its own: both kernels compute a row alone (kernels.c).
        return self.fused(tokens, positions, slots)[:, -1]


def describe(net, weights: str | None) -> str:
    """The weights in words, with how many layers hold grouped weights."""
    words = CPU_WEIGHTS[weights].words if weights else "none"
    grouped = sum(isinstance(m, GroupedLinear) for m in net.modules())
    if grouped:
        linears = grouped + sum(isinstance(m, Float16Linear) for m in net.modules())
        words += f"; {grouped} of {linears} layers grouped"
    return words
