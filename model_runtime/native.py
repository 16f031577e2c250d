"""The C kernels in kernels.c: built once per machine with the system's C compiler, called through ctypes.

They need x86-64 with AVX2 and FMA, and a C compiler the first time; where
either is missing, `why_unavailable()` says so and the CPU path uses
PyTorch's own kernels instead. Where the CPU has AVX-512 they are built for
it (x86-64-v4): the matrix products then take 16 outputs a vector, with the
same bits as the AVX2 build.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
from functools import cache
from pathlib import Path

import torch  # loads the OpenMP runtime the kernels then share

from .loading import cache_dir

SOURCE = Path(__file__).with_name("kernels.c")
GROUP = 32  # weights per scale
BLOCK = 8  # rows of W whose values sit side by side: one AVX vector of floats
# kernels.c takes GROUP and BLOCK from here, so the packing and the kernels cannot disagree.
FLAGS = ("-O3", "-fopenmp", "-shared", "-fPIC", f"-DGROUP={GROUP}", f"-DBLOCK={BLOCK}")
MATMUL_ROWS = 12  # measured: below this, unpacking a panel of weights costs more than it saves
# What each build needs of the CPU: x86-64-v3 is AVX2 and FMA, v4 adds the AVX-512 subsets it names.
LEVELS = {"x86-64-v3": {"avx2", "fma"}, "x86-64-v4": {"avx2", "fma", "avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}}


@cache
def _cpu_flags() -> set[str] | str:
    """The CPU's feature flags, or why they cannot be known."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return f"the C kernels are written for x86-64; this CPU is {platform.machine()}"
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "cannot read the CPU's features from /proc/cpuinfo"
    return set(flags.split(":", 1)[-1].split())


def best_level() -> str:
    """The widest build this CPU runs (the AVX2 one where it has no AVX-512, or its features are unknown)."""
    flags = _cpu_flags()
    return "x86-64-v4" if isinstance(flags, set) and LEVELS["x86-64-v4"] <= flags else "x86-64-v3"


def _cpu_problem(level: str) -> str | None:
    flags = _cpu_flags()
    if isinstance(flags, str):
        return flags
    missing = LEVELS[level] - flags
    return f"this CPU lacks {', '.join(sorted(missing))}" if missing else None


def _built(level: str) -> Path:
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join((*FLAGS, level)).encode()).hexdigest()[:16]
    return cache_dir() / "kernels" / f"kernels-{key}.so"


def _build(target: Path, level: str) -> str | None:
    """Compile kernels.c for `level` into `target`; None when done, else why not."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        return "no C compiler (cc) to build the C kernels; install gcc"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    command = [compiler, *FLAGS, f"-march={level}", "-o", str(partial), str(SOURCE), "-lm"]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        partial.unlink(missing_ok=True)
        first = (exc.stderr or "").strip().splitlines()[:1]
        return f"building the C kernels failed: {first[0] if first else exc}"
    partial.replace(target)  # atomic: another process never loads half a file
    return None


@cache
def _load(level: str | None = None) -> tuple[ctypes.CDLL | None, str | None]:
    """The kernels built for `level` (the CPU's best by default), or why they cannot run."""
    level = level or best_level()
    problem = _cpu_problem(level)
    target = _built(level)
    try:
        # A library built earlier (or baked into an image) needs no compiler.
        problem = problem or (None if target.exists() else _build(target, level))
        if problem:
            return None, problem
        lib = ctypes.CDLL(str(target))
    except OSError as exc:
        return None, f"cannot build or load the C kernels: {exc}"
    pointer, integer = ctypes.c_void_p, ctypes.c_int
    for kernel in (lib.grouped_matvec, lib.grouped_matmul):
        kernel.argtypes = [integer, pointer, integer, integer, pointer, pointer, pointer, integer, pointer]
        kernel.restype = integer
    lib.add_rms_norm.argtypes = [pointer, pointer, pointer, ctypes.c_float, integer, integer, pointer]
    lib.silu_mul.argtypes = [pointer, integer, integer, pointer]
    lib.attention.argtypes = [pointer, integer, pointer, pointer, pointer, pointer, pointer, pointer,
                              integer, integer, integer, integer, pointer]
    lib.attention.restype = integer
    lib.decoder_layers.argtypes = [pointer, integer, integer, integer, integer, integer, integer, integer,
                                   ctypes.c_float, pointer, pointer, pointer, pointer, pointer, pointer]
    lib.decoder_layers.restype = integer
    return lib, None


def why_unavailable() -> str | None:
    """None when the kernels are ready; otherwise why they are not."""
    return _load()[1]


def grouped_linear(x: torch.Tensor, bits: int, q: torch.Tensor, d: torch.Tensor, m: torch.Tensor | None,
                   out_features: int) -> torch.Tensor:
    """x [batch, T, K] or [rows, K] float32 times weights in groups of 32 (see kernels.c).

    Both kernels give a row the same bits, however many rows share the call:
    MATMUL_ROWS rows or more (a prompt's chunk, or a decode step with many
    drafted rows) take the matrix-matrix kernel, fewer the matrix-vector one.
    """
    lib = _load()[0]
    flat = x.reshape(-1, x.shape[-1]).contiguous()
    kernel = lib.grouped_matmul if flat.shape[0] >= MATMUL_ROWS else lib.grouped_matvec
    y = torch.empty(flat.shape[0], out_features)
    failed = kernel(
        bits, flat.data_ptr(), flat.shape[0], flat.shape[1], q.data_ptr(), d.data_ptr(),
        None if m is None else m.data_ptr(), out_features, y.data_ptr(),
    )
    if failed:
        raise MemoryError("the grouped-weight kernel could not allocate its scratch space")
    return y.view(*x.shape[:-1], out_features)


# The rest of a layer, on contiguous float32 tensors [rows, ...], a row a token (see kernels.c).

def add_rms_norm(x: torch.Tensor, delta: torch.Tensor | None, weight: torch.Tensor, eps: float, out: torch.Tensor) -> None:
    """x += delta (in place, unless delta is None); out = RMSNorm(x) * weight."""
    rows, dim = x.shape
    _load()[0].add_rms_norm(x.data_ptr(), None if delta is None else delta.data_ptr(), weight.data_ptr(), eps,
                            rows, dim, out.data_ptr())


def silu_mul(gate_up: torch.Tensor) -> torch.Tensor:
    rows, width = gate_up.shape
    out = torch.empty(rows, width // 2)
    _load()[0].silu_mul(gate_up.data_ptr(), rows, width // 2, out.data_ptr())
    return out


def attention(qkv, cos_table, sin_table, positions, slots, k_cache, v_cache, n_heads: int) -> torch.Tensor:
    """A token per row: rotate, write the key and value into the row's slot, attend; [rows, n_heads * head_dim]."""
    rows = qkv.shape[0]
    _, n_kv, max_seq, head_dim = k_cache.shape
    out = torch.empty(rows, n_heads * head_dim)
    failed = _load()[0].attention(
        qkv.data_ptr(), rows, cos_table.data_ptr(), sin_table.data_ptr(), positions.data_ptr(), slots.data_ptr(),
        k_cache.data_ptr(), v_cache.data_ptr(), n_heads, n_kv, head_dim, max_seq, out.data_ptr(),
    )
    if failed:
        raise MemoryError("the attention kernel could not allocate its scratch space")
    return out


class Matrix(ctypes.Structure):
    """kernels.c's Matrix: a quantize.GroupedLinear's buffers."""

    _fields_ = [("q", ctypes.c_void_p), ("d", ctypes.c_void_p), ("m", ctypes.c_void_p), ("bias", ctypes.c_void_p),
                ("bits", ctypes.c_int), ("in_features", ctypes.c_int), ("out_features", ctypes.c_int)]


class Layer(ctypes.Structure):
    """kernels.c's Layer: a decoder layer's four matrices, the norms around its feed-forward, its KV cache."""

    _fields_ = [("wqkv", Matrix), ("wo", Matrix), ("w13", Matrix), ("w2", Matrix),
                ("ffn_norm", ctypes.c_void_p), ("next_norm", ctypes.c_void_p),
                ("k_cache", ctypes.c_void_p), ("v_cache", ctypes.c_void_p)]


def matrix(layer) -> Matrix:
    pointer = lambda t: None if t is None else t.data_ptr()  # noqa: E731
    return Matrix(pointer(layer.weight), pointer(layer.scales), pointer(layer.offsets), pointer(layer.bias),
                  layer.bits, layer.in_features, layer.out_features)


def decoder_layers(layers, many_rows: bool, n_heads: int, eps: float, cos_table, sin_table, positions, slots,
                   k_cache, x: torch.Tensor, h: torch.Tensor) -> None:
    """Every layer in one call (an array of Layer); x and h [rows, dim] as kernels.c's decoder_layers says."""
    _, n_kv, max_seq, head_dim = k_cache.shape
    failed = _load()[0].decoder_layers(
        layers, len(layers), x.shape[0], many_rows, n_heads, n_kv, head_dim, max_seq, eps, cos_table.data_ptr(),
        sin_table.data_ptr(), positions.data_ptr(), slots.data_ptr(), x.data_ptr(), h.data_ptr(),
    )
    if failed:
        raise MemoryError("the decoder layers could not allocate their scratch space")
