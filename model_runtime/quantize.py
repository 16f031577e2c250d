"""Smaller weights for the CPU: float16, int4 (groups of 32) and int8 (per channel).

Decoding a small model reads every weight once per step, so on a CPU the
speed is bound by memory traffic and, as the batch grows, by arithmetic.
Grouped weights (our C kernels, float32 activations) hold each group of 32
weights as d * q + m with 4-bit q, or d * q with 8-bit q: GGUF's Q4_1 and
Q8_0, so a GGUF checkpoint's weights are kept exactly in a quarter to a
third of float32's bytes. float16 weights (fbgemm's packed GEMM, float32
activations) move half of float32's bytes and are the fallback where the C
kernels cannot be built or a layer's weights do not fit a group format.
PyTorch's int4 and int8 kernels (used where neither of those runs) want
bfloat16 activations, so those layers convert their input to bfloat16 and back.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from . import native

# Saved packings carry this: any change to how weights are packed or read makes them stale.
PACKING_VERSION = hashlib.sha256(Path(__file__).read_bytes() + native.SOURCE.read_bytes()).hexdigest()[:12]


class Float16Linear(nn.Module):
    def __init__(self, linear: nn.Linear):
        super().__init__()
        bias = None if linear.bias is None else linear.bias.detach().float()
        # An opaque packed object, not a buffer: it stays out of state_dict and .to().
        self.packed = torch.ops.quantized.linear_prepack_fp16(linear.weight.detach().float(), bias)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    @property
    def nbytes(self) -> int:
        return 2 * self.in_features * self.out_features

    @staticmethod
    def available() -> bool:
        return "fbgemm" in torch.backends.quantized.supported_engines  # x86 builds of PyTorch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic_fp16(x, self.packed)


def pack_groups(weight: torch.Tensor, bits: int):
    """(q as bytes, scales, offsets or None, whether they hold `weight` exactly), laid out as kernels.c reads them."""
    n, k = weight.shape
    groups = weight.reshape(n, k // native.GROUP, native.GROUP)
    if bits == 4:
        low, high = groups.amin(-1), groups.amax(-1)
        # Q4_1 stores d as float16: rounding to it recovers a GGUF file's d exactly.
        d = ((high - low) / 15).half().float()
        q = torch.round((groups - low[..., None]) / d.clamp(min=1e-30)[..., None]).clamp(0, 15).to(torch.uint8)
        held, offsets = q.float() * d[..., None] + low[..., None], low
    else:
        d = groups.abs().amax(-1) / 127
        q = torch.round(groups / d.clamp(min=1e-30)[..., None]).clamp(-127, 127).to(torch.int8)
        held, offsets = q.float() * d[..., None], None
    exact = torch.equal(held.reshape(n, k), weight)
    # Blocks of 8 rows, each column's 8 values side by side: 8 nibbles in 4 bytes, or 8 bytes.
    q = by_blocks(q.view(torch.uint8).reshape(n, k))  # [blocks, k, BLOCK]
    packed = q[..., 0::2] | (q[..., 1::2] << 4) if bits == 4 else q
    return (packed.contiguous(), by_blocks(d).contiguous(),
            None if offsets is None else by_blocks(offsets).contiguous(), exact)


def by_blocks(rows: torch.Tensor) -> torch.Tensor:
    """[n, c] -> [ceil(n / BLOCK), c, BLOCK]: rows padded with zeros to whole blocks, then side by side."""
    n, block = rows.shape[0], native.BLOCK
    padded = torch.cat([rows, rows.new_zeros(-n % block, *rows.shape[1:])])
    return padded.reshape(-1, block, *rows.shape[1:]).transpose(1, 2)


class GroupedLinear(nn.Module):
    """Weights in groups of 32: d * q + m with 4-bit q, or d * q with signed 8-bit q."""

    def __init__(self, linear: nn.Linear, bits: int, packed: tuple | None = None):
        """Pack `linear`'s weights, or take `packed`, pack_groups' result saved earlier."""
        super().__init__()
        packed, scales, offsets, self.exact = packed or pack_groups(linear.weight.detach().float(), bits)
        self.register_buffer("weight", packed)
        self.register_buffer("scales", scales)
        self.register_buffer("offsets", offsets)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float().clone())
        self.bits, self.in_features, self.out_features = bits, linear.in_features, linear.out_features

    @staticmethod
    def fits(linear: nn.Linear) -> bool:
        return linear.in_features % native.GROUP == 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = native.grouped_linear(x, self.bits, self.weight, self.scales, self.offsets, self.out_features)
        return y if self.bias is None else y + self.bias


def lossless(linear: nn.Linear) -> nn.Module:
    """The smallest grouped format that holds the layer's weights exactly, else float16."""
    if GroupedLinear.fits(linear):
        for bits in (4, 8):
            # A few rows first, so a format that cannot hold them costs no full packing.
            if pack_groups(linear.weight.detach()[:16].float(), bits)[3]:
                grouped = GroupedLinear(linear, bits)
                if grouped.exact:
                    return grouped
    return Float16Linear(linear)


def grouped(linear: nn.Linear, bits: int) -> nn.Module:
    return GroupedLinear(linear, bits) if GroupedLinear.fits(linear) else Float16Linear(linear)


class Int8Linear(nn.Module):
    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight = linear.weight.detach().float()
        # Symmetric, one scale per output channel.
        scales = weight.abs().amax(dim=1).clamp(min=1e-8) / 127
        self.register_buffer("weight", torch.round(weight / scales[:, None]).to(torch.int8))
        self.register_buffer("scales", scales.to(torch.bfloat16))
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())
        self.out_features = linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)
        y = torch.ops.aten._weight_int8pack_mm(flat, self.weight, self.scales).to(x.dtype)
        y = y.view(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias


class Int4Linear(nn.Module):
    GROUP = 32

    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight = linear.weight.detach().float()
        n, k = weight.shape
        groups = weight.reshape(n, k // self.GROUP, self.GROUP)
        low, high = groups.amin(-1, keepdim=True), groups.amax(-1, keepdim=True)
        scales = ((high - low) / 15).clamp(min=1e-8)
        q = torch.round((groups - low) / scales).clamp(0, 15).to(torch.int32).reshape(n, k)
        # The kernel computes (q - 8) * scale + zero.
        zeros = low + 8 * scales
        self.register_buffer("weight", torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1))
        self.register_buffer(
            "scales_and_zeros", torch.cat([scales, zeros], -1).transpose(0, 1).contiguous().to(torch.bfloat16)
        )
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())
        self.out_features = n

    @classmethod
    def fits(cls, linear: nn.Linear) -> bool:
        return linear.in_features % cls.GROUP == 0 and linear.out_features % 16 == 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(flat, self.weight, self.GROUP, self.scales_and_zeros)
        y = y.to(x.dtype).view(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias


def replace_linears(module: nn.Module, make, workers: int = 1) -> None:
    """Swap every nn.Linear under `module` for make(linear), on `workers` threads."""
    found = [(parent, name, child) for parent in module.modules() for name, child in parent.named_children()
             if isinstance(child, nn.Linear)]
    with ThreadPoolExecutor(workers) as pool:
        for (parent, name, _), made in zip(found, pool.map(make, [linear for *_, linear in found])):
            setattr(parent, name, made)


def quantize_cpu(model: nn.Module, weights: str, saved: Path | None = None) -> nn.Module:
    """Swap every nn.Linear for its version in the `weights` format (see cpu.FORMATS).

    saved: a file of grouped layers packed by an earlier start of the same
    checkpoint; read when it exists, written when it does not.
    """
    make = {
        "lossless": lossless,
        "q4": partial(grouped, bits=4),
        "q8": partial(grouped, bits=8),
        "float16": Float16Linear,
        "int8": Int8Linear,
        "int4": lambda linear: Int4Linear(linear) if Int4Linear.fits(linear) else Int8Linear(linear),
    }[weights]
    index = {id(m): i for i, m in enumerate(m for m in model.modules() if isinstance(m, nn.Linear))}
    try:
        earlier = read_packing(saved) if saved is not None and saved.exists() else {}
    except (SafetensorError, OSError, KeyError, ValueError):
        earlier = {}  # a damaged file: pack again and write it anew
    made = {}

    def make_or_reuse(linear: nn.Linear) -> nn.Module:
        i = index[id(linear)]
        made[i] = GroupedLinear(linear, *earlier[i]) if i in earlier else make(linear)
        return made[i]

    # Packing runs one matrix per core without the GIL: side by side it saves seconds of start-up.
    replace_linears(model, make_or_reuse, workers=torch.get_num_threads())
    if saved is not None and not earlier:
        write_packing(saved, made)
    return model


def read_packing(path: Path) -> dict[int, tuple]:
    """{linear's index: (bits, pack_groups' result)} from a file write_packing wrote."""
    with safe_open(path, "pt") as f:
        layers = json.loads(f.metadata()["layers"])
        return {
            int(i): (meta["bits"], (f.get_tensor(f"{i}.weight"), f.get_tensor(f"{i}.scales"),
                                    f.get_tensor(f"{i}.offsets") if meta["bits"] == 4 else None, meta["exact"]))
            for i, meta in layers.items()
        }


def write_packing(path: Path, made: dict[int, nn.Module]) -> None:
    grouped = {i: layer for i, layer in made.items() if isinstance(layer, GroupedLinear)}
    if not grouped:
        return
    tensors = {f"{i}.{name}": buffer.contiguous() for i, layer in grouped.items()
               for name in ("weight", "scales", "offsets") if (buffer := getattr(layer, name)) is not None}
    layers = {str(i): {"bits": layer.bits, "exact": layer.exact} for i, layer in grouped.items()}
    partial_file = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        save_file(tensors, partial_file, metadata={"layers": json.dumps(layers)})
        partial_file.replace(path)  # atomic: a concurrent start never reads half a file
    except OSError:
        partial_file.unlink(missing_ok=True)  # a read-only cache: every start packs, nothing else changes
