"""Smaller weights for the CPU: one WeightFormat class per format, and the choices that use them.

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

A new format is one WeightFormat subclass here (its packing, exactness and
kernel; a kernel in kernels.c only where PyTorch has none) and its place in
CPU_WEIGHTS. The GPU's formats are bitsandbytes' own layers (cuda_graphs.py).
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from . import native

# Saved packings carry this: any change to how weights are packed or read makes them stale.
PACKING_VERSION = hashlib.sha256(Path(__file__).read_bytes() + native.SOURCE.read_bytes()).hexdigest()[:12]


class WeightFormat(nn.Module):
    """A linear layer with its weights held in one format. Each format is one subclass:

    - fits(linear): whether the format can hold that layer's shape;
    - __init__(linear): how it packs the weights (once, at load);
    - exact: whether the packing holds the weights exactly;
    - forward: the kernel that multiplies by them.

    CPU_WEIGHTS says which formats each CPU weight choice tries, in order.
    """

    name = ""
    exact = False

    @classmethod
    def fits(cls, linear: nn.Linear) -> bool:
        return True

    @classmethod
    def holds_exactly(cls, rows: torch.Tensor) -> bool:
        """Whether a few of a layer's rows pack exactly: a cheap test before packing all of them."""
        return False


class Float16Linear(WeightFormat):
    """float16 weights in fbgemm's packed GEMM, float32 activations."""

    name = "float16"

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


def by_blocks(rows: torch.Tensor) -> torch.Tensor:
    """[n, c] -> [ceil(n / BLOCK), c, BLOCK]: rows padded with zeros to whole blocks, then side by side."""
    n, block = rows.shape[0], native.BLOCK
    padded = torch.cat([rows, rows.new_zeros(-n % block, *rows.shape[1:])])
    return padded.reshape(-1, block, *rows.shape[1:]).transpose(1, 2)


class GroupedLinear(WeightFormat):
    """Weights in groups of native.GROUP with a scale each, laid out for kernels.c's grouped kernels.

    A subclass says how a group's values become small integers (`quantize`)
    and how many bits they take; packing, the exactness check and the kernel
    call are shared.
    """

    bits = 0

    def __init__(self, linear: nn.Linear, packed: tuple | None = None):
        """Pack `linear`'s weights, or take `packed`, pack()'s result saved earlier."""
        super().__init__()
        packed, scales, offsets, self.exact = packed or self.pack(linear.weight.detach().float())
        self.register_buffer("weight", packed)
        self.register_buffer("scales", scales)
        self.register_buffer("offsets", offsets)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float().clone())
        self.in_features, self.out_features = linear.in_features, linear.out_features

    @classmethod
    def fits(cls, linear: nn.Linear) -> bool:
        return linear.in_features % native.GROUP == 0

    @classmethod
    def holds_exactly(cls, rows: torch.Tensor) -> bool:
        return cls.pack(rows.float())[3]

    @staticmethod
    def quantize(groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """groups [n, k / GROUP, GROUP] -> (q as uint8 or int8, scales d, offsets m or None)."""
        raise NotImplementedError

    @classmethod
    def pack(cls, weight: torch.Tensor):
        """(q as bytes, scales, offsets or None, whether they hold `weight` exactly), laid out as kernels.c reads them."""
        n, k = weight.shape
        groups = weight.reshape(n, k // native.GROUP, native.GROUP)
        q, d, m = cls.quantize(groups)
        held = q.float() * d[..., None] + (0 if m is None else m[..., None])
        exact = torch.equal(held.reshape(n, k), weight)
        # Blocks of 8 rows, each column's 8 values side by side: 8 nibbles in 4 bytes, or 8 bytes.
        q = by_blocks(q.view(torch.uint8).reshape(n, k))  # [blocks, k, BLOCK]
        packed = q[..., 0::2] | (q[..., 1::2] << 4) if cls.bits == 4 else q
        return (packed.contiguous(), by_blocks(d).contiguous(), None if m is None else by_blocks(m).contiguous(), exact)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = native.grouped_linear(x, self.bits, self.weight, self.scales, self.offsets, self.out_features)
        return y if self.bias is None else y + self.bias


class Q4_1Linear(GroupedLinear):
    """GGUF's Q4_1: a group's weights are d * q + m, q in 0..15."""

    name, bits = "q4_1", 4

    @staticmethod
    def quantize(groups):
        low, high = groups.amin(-1), groups.amax(-1)
        # Q4_1 stores d as float16: rounding to it recovers a GGUF file's d exactly.
        d = ((high - low) / 15).half().float()
        q = torch.round((groups - low[..., None]) / d.clamp(min=1e-30)[..., None]).clamp(0, 15).to(torch.uint8)
        return q, d, low


class Q8_0Linear(GroupedLinear):
    """GGUF's Q8_0: a group's weights are d * q, q in -127..127."""

    name, bits = "q8_0", 8

    @staticmethod
    def quantize(groups):
        d = groups.abs().amax(-1) / 127
        q = torch.round(groups / d.clamp(min=1e-30)[..., None]).clamp(-127, 127).to(torch.int8)
        return q, d, None


class Int8Linear(WeightFormat):
    """PyTorch's int8 weight-only kernel: one scale per output channel, bfloat16 activations."""

    name = "int8"

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


class Int4Linear(WeightFormat):
    """PyTorch's int4 weight-only kernel: groups of 32 with a scale and zero each, bfloat16 activations."""

    name = "int4"
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


GROUPED = {cls.name: cls for cls in (Q4_1Linear, Q8_0Linear)}


@dataclass(frozen=True)
class CpuWeights:
    """A CPU weight choice: the formats it tries for each layer, in order, and the one it falls back on."""

    words: str  # for Engine.info()
    formats: tuple[type[WeightFormat], ...]
    fallback: type[WeightFormat]
    exact_only: bool = False  # take a format only where it holds the layer's weights exactly

    @property
    def grouped(self) -> bool:
        """Whether its layers are packed in groups, which a converted GGUF saves beside it."""
        return any(issubclass(fmt, GroupedLinear) for fmt in self.formats)

    def make(self, linear: nn.Linear) -> WeightFormat:
        for fmt in self.formats:
            # A few rows first, so a format that cannot hold them costs no full packing.
            if fmt.fits(linear) and (not self.exact_only or fmt.holds_exactly(linear.weight.detach()[:16])):
                layer = fmt(linear)
                if layer.exact or not self.exact_only:
                    return layer
        return self.fallback(linear)


CPU_WEIGHTS = {
    "lossless": CpuWeights("lossless groups of 32 (4-bit Q4_1 or 8-bit Q8_0 where they hold the weights exactly, "
                           "float16 elsewhere), float32 activations", (Q4_1Linear, Q8_0Linear), Float16Linear, True),
    "q4": CpuWeights("4-bit groups of 32 (Q4_1), float32 activations", (Q4_1Linear,), Float16Linear),
    "q8": CpuWeights("8-bit groups of 32 (Q8_0), float32 activations", (Q8_0Linear,), Float16Linear),
    "float16": CpuWeights("float16 weights (fbgemm), float32 activations", (), Float16Linear),
    "int4": CpuWeights("int4 weight-only, groups of 32", (Int4Linear,), Int8Linear),
    "int8": CpuWeights("int8 weight-only, per channel", (), Int8Linear),
}


def replace_linears(module: nn.Module, make, workers: int = 1) -> None:
    """Swap every nn.Linear under `module` for make(linear), on `workers` threads."""
    found = [(parent, name, child) for parent in module.modules() for name, child in parent.named_children()
             if isinstance(child, nn.Linear)]
    with ThreadPoolExecutor(workers) as pool:
        for (parent, name, _), made in zip(found, pool.map(make, [linear for *_, linear in found])):
            setattr(parent, name, made)


def quantize_cpu(model: nn.Module, weights: str, saved: Path | None = None) -> nn.Module:
    """Swap every nn.Linear for its version in the `weights` choice of CPU_WEIGHTS.

    saved: a file of grouped layers packed by an earlier start of the same
    checkpoint; read when it exists, written when it does not.
    """
    make = CPU_WEIGHTS[weights].make
    index = {id(m): i for i, m in enumerate(m for m in model.modules() if isinstance(m, nn.Linear))}
    try:
        earlier = read_packing(saved) if saved is not None and saved.exists() else {}
    except (SafetensorError, OSError, KeyError, ValueError):
        earlier = {}  # a damaged file: pack again and write it anew
    made = {}

    def make_or_reuse(linear: nn.Linear) -> nn.Module:
        i = index[id(linear)]
        if i in earlier:
            grouped, packed = earlier[i]
            made[i] = grouped(linear, packed)
        else:
            made[i] = make(linear)
        return made[i]

    # Packing runs one matrix per core without the GIL: side by side it saves seconds of start-up.
    replace_linears(model, make_or_reuse, workers=torch.get_num_threads())
    if saved is not None and not earlier:
        write_packing(saved, made)
    return model


def read_packing(path: Path) -> dict[int, tuple]:
    """{linear's index: (its GroupedLinear class, pack()'s result)} from a file write_packing wrote."""
    with safe_open(path, "pt") as f:
        layers = json.loads(f.metadata()["layers"])
        offsets = lambda i: f.get_tensor(f"{i}.offsets") if f"{i}.offsets" in f.keys() else None  # noqa: E731
        return {
            int(i): (GROUPED[meta["format"]],
                     (f.get_tensor(f"{i}.weight"), f.get_tensor(f"{i}.scales"), offsets(i), meta["exact"]))
            for i, meta in layers.items()
        }


def write_packing(path: Path, made: dict[int, nn.Module]) -> None:
    grouped = {i: layer for i, layer in made.items() if isinstance(layer, GroupedLinear)}
    if not grouped:
        return
    tensors = {f"{i}.{name}": buffer.contiguous() for i, layer in grouped.items()
               for name in ("weight", "scales", "offsets") if (buffer := getattr(layer, name)) is not None}
    layers = {str(i): {"format": layer.name, "exact": layer.exact} for i, layer in grouped.items()}
    partial_file = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        save_file(tensors, partial_file, metadata={"layers": json.dumps(layers)})
        partial_file.replace(path)  # atomic: a concurrent start never reads half a file
    except OSError:
        partial_file.unlink(missing_ok=True)  # a read-only cache: every start packs, nothing else changes
