"""The C kernels for weights in groups of 32 (model_runtime/kernels.c), against PyTorch's float32 matmul."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import model_runtime
from model_runtime import native
from model_runtime.backend import run_network
from model_runtime.cpu import FusedForward, weight_format
from model_runtime import quantize
from model_runtime.loading import load_pretrained
from model_runtime.model import RMSNorm, from_hf
from model_runtime.quantize import CPU_WEIGHTS, Float16Linear, GroupedLinear, Q4_1Linear, Q8_0Linear, quantize_cpu

pytestmark = pytest.mark.skipif(native.why_unavailable() is not None, reason=str(native.why_unavailable()))
GROUPED = {4: Q4_1Linear, 8: Q8_0Linear}
lossless = CPU_WEIGHTS["lossless"].make


def on_grid(out_features: int, in_features: int, bits: int, seed: int = 0) -> torch.Tensor:
    """Weights a GGUF file could hold: Q4_1 (d * q + m) or Q8_0 (d * q) in groups of 32, d a float16."""
    g = torch.Generator().manual_seed(seed)
    shape = (out_features, in_features // 32)
    d = (torch.rand(*shape, 1, generator=g) * 0.05 + 0.001).half().float()
    if bits == 4:
        q = torch.randint(0, 16, (*shape, 32), generator=g).float()
        q[..., 0], q[..., 1] = 0, 15  # llama.cpp's groups span their whole range
        m = -(torch.rand(*shape, 1, generator=g) * 0.3).half().float()
        return (q * d + m).reshape(out_features, in_features)
    q = torch.randint(-127, 128, (*shape, 32), generator=g).float()
    q[..., 0] = 127
    return (q * d).reshape(out_features, in_features)


def linear_with(weight: torch.Tensor, bias: bool = False) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias)
    layer.weight.data = weight
    return layer


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("shape", [(1, 1), (3, 1), (8, 1), (13, 1), (1, 40), (2, 71)])  # (batch, tokens)
def test_grouped_weights_multiply_like_float32(bits, shape):
    # Decode steps (one token a row) and prompt chunks (many) take different kernels.
    layer = linear_with(on_grid(44, 96, bits), bias=True)  # 44 outputs: not a whole number of blocks of 8
    grouped = GROUPED[bits](layer)
    assert grouped.exact
    x = torch.randn(*shape, 96)
    # Against the exact product: the kernels' float32 sums and torch's run in different orders, and
    # each strays from it by up to about 6e-5 here, so two of them can differ by twice that.
    exact = nn.functional.linear(x.double(), layer.weight.double(), layer.bias.double())
    torch.testing.assert_close(grouped(x).double(), exact, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("bits", [4, 8])
def test_a_row_gets_the_same_bits_alone_and_in_any_batch(bits):
    grouped = GROUPED[bits](linear_with(on_grid(64, 128, bits)))
    x = torch.randn(13, 1, 128)  # thirteen requests' decode step
    together = grouped(x)[:, 0]
    for i in range(13):
        assert torch.equal(grouped(x[i : i + 1])[0, 0], together[i])
        assert torch.equal(grouped(x[: i + 1])[i, 0], together[i])


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("out_features", [40, 200])  # 5 and 25 blocks of 8: odd pairs, part-filled panels
def test_a_prompt_row_gets_the_same_bits_as_a_decode_step(bits, out_features):
    # Prefix reuse and drafts mix rows a prompt wrote with rows decode steps wrote: they must agree exactly.
    grouped = GROUPED[bits](linear_with(on_grid(out_features, 128, bits)))
    prompt = torch.randn(1, 2 * native.MATMUL_ROWS + 1, 128)  # the matrix-matrix kernel, a part-filled tile
    together = grouped(prompt)[0]
    for i in range(prompt.shape[1]):
        assert torch.equal(grouped(prompt[:, i : i + 1])[0, 0], together[i])


def test_rows_attended_together_get_their_bits_alone_and_softmax_attention():
    n_heads, n_kv, head_dim, max_seq = 6, 2, 16, 160
    g = torch.Generator().manual_seed(3)
    # Slot 1: a prompt's chunk past a long cached start (lengths across key chunks, not whole blocks of 8);
    # slot 0: two draft rows; then slot 1 once more, alone in its run.
    positions = torch.tensor([90, 91, 92, 93, 94, 95, 96, 5, 6, 140])
    slots = torch.tensor([1, 1, 1, 1, 1, 1, 1, 0, 0, 1])
    qkv = torch.randn(len(positions), (n_heads + 2 * n_kv) * head_dim, generator=g)
    cos, sin = torch.ones(max_seq, head_dim), torch.zeros(max_seq, head_dim)  # no rotation: a plain reference

    def fresh_cache() -> torch.Tensor:
        return torch.randn(2, n_kv, max_seq, head_dim, generator=torch.Generator().manual_seed(4))

    k_cache, v_cache = fresh_cache(), fresh_cache()
    together = native.attention(qkv, cos, sin, positions, slots, k_cache, v_cache, n_heads)
    for r in range(len(positions)):  # the cache now holds every row's key and value: a row alone rewrites its own
        alone = native.attention(qkv[r : r + 1], cos, sin, positions[r : r + 1], slots[r : r + 1], k_cache, v_cache, n_heads)
        assert torch.equal(alone[0], together[r])
        q = qkv[r, : n_heads * head_dim].view(n_heads, head_dim).double()
        keys = k_cache[slots[r], :, : positions[r] + 1].double().repeat_interleave(n_heads // n_kv, 0)
        values = v_cache[slots[r], :, : positions[r] + 1].double().repeat_interleave(n_heads // n_kv, 0)
        weights = torch.softmax(torch.einsum("hd,htd->ht", q, keys) / head_dim**0.5, -1)
        torch.testing.assert_close(together[r].double(), torch.einsum("ht,htd->hd", weights, values).reshape(-1),
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(native.best_level() != "x86-64-v4", reason="this CPU has no AVX-512")
def test_the_avx512_build_gives_the_avx2_builds_bits(tiny_model_of, monkeypatch):
    engine = model_runtime.load(str(tiny_model_of("qwen2")), quantization="4bit", max_batch=2, max_seq_len=128,
                                background=False)
    prompt = torch.tensor([engine.encode([{"role": "user", "content": "What does Compose do for a kitchen? " * 3}])])
    positions = torch.arange(prompt.shape[1])[None]

    def forward() -> list[torch.Tensor]:  # a prompt, then a decode step beside another slot's
        with torch.inference_mode():
            return [engine.backend.fused(prompt, positions, [0]),
                    engine.backend.fused(torch.tensor([[5], [7]]), torch.tensor([[prompt.shape[1]], [3]]), [0, 1])]

    try:
        wide = forward()
        build = native._load
        monkeypatch.setattr(native, "_load", lambda level=None: build("x86-64-v3"))
        assert native._load()[0] is not build()[0]
        for got, want in zip(forward(), wide, strict=True):
            assert torch.equal(got, want)
    finally:
        engine.close()


def test_lossless_picks_the_smallest_format_that_holds_the_weights():
    q4 = lossless(linear_with(on_grid(32, 64, 4)))
    q8 = lossless(linear_with(on_grid(32, 64, 8, seed=1)))
    assert isinstance(q4, Q4_1Linear) and isinstance(q8, Q8_0Linear)
    assert isinstance(lossless(linear_with(torch.randn(32, 64))), Float16Linear)
    assert isinstance(lossless(nn.Linear(48, 32)), Float16Linear)  # 48 inputs: not whole groups


def test_lossy_4bit_stays_close_to_the_float_layer():
    layer = linear_with(torch.randn(64, 128) * 0.05)
    grouped = Q4_1Linear(layer)
    assert not grouped.exact
    x = torch.randn(4, 128)
    assert nn.functional.cosine_similarity(grouped(x), layer(x), dim=-1).min() > 0.99


def test_without_the_kernels_the_cpu_path_falls_back_and_says_why(monkeypatch, tiny_model_dir):
    monkeypatch.setattr(native, "_load", lambda: (None, "no C compiler (cc) to build the 4-bit kernels"))
    assert weight_format("auto") in ("float16", "int4") and weight_format("4bit") == "int4"
    engine = model_runtime.load(str(tiny_model_dir), max_batch=1, max_seq_len=64)
    try:
        info = engine.info()
        assert info["quantization"].startswith(CPU_WEIGHTS[weight_format("auto")].words)
        assert "no C compiler" in info["why_not_faster"]
    finally:
        engine.close()


def caches(engine) -> list[torch.Tensor]:
    return [c.clone() for layer in engine.backend.net.layers for c in (layer.attention.k_cache, layer.attention.v_cache)]


def restore(engine, saved: list[torch.Tensor]) -> None:
    for c, s in zip((c for layer in engine.backend.net.layers for c in (layer.attention.k_cache, layer.attention.v_cache)), saved):
        c.copy_(s)


def same_as_the_network(engine, *args, **kwargs) -> None:
    """The C forward pass gives the network's logits and leaves the KV cache as the network's own pass does."""
    backend = engine.backend
    before = caches(engine)
    got = backend.fused(*args, **kwargs)
    got_caches = caches(engine)
    restore(engine, before)
    want = run_network(backend.net, backend.device, *args, **kwargs)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    for got_cache, want_cache in zip(got_caches, caches(engine)):
        torch.testing.assert_close(got_cache, want_cache, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "architecture, quantization",  # random weights: grouped, float16; then models with biases
    [("llama", "4bit"), ("llama", "auto"), ("qwen2", "4bit"), ("llama with biases", "4bit")],
)
@pytest.mark.parametrize("slots", [[0, 1], [2, 0]])
def test_fused_prompts_and_decode_steps_match_the_network(tiny_model_of, architecture, quantization, slots):
    engine = model_runtime.load(str(tiny_model_of(architecture)), quantization=quantization, max_batch=4,
                                max_seq_len=256, background=False)
    try:
        assert isinstance(engine.backend.fused, FusedForward) and engine.info()["backend"] == "cpu-fused"
        # All layers grouped: one C call for all of them; float16 layers: the same calls from Python.
        assert (engine.backend.fused.layers is not None) == (quantization == "4bit")
        # A fresh model's norms are all ones: give each its own weights, so that a mixed-up norm shows.
        norms = [m.weight for m in engine.backend.net.modules() if isinstance(m, RMSNorm)]
        for seed, norm in enumerate(norms):
            norm.copy_(1 + 0.3 * torch.randn(norm.shape, generator=torch.Generator().manual_seed(seed)))
        lengths = []
        # A prompt chunk too short for the prompt kernel (native.MATMUL_ROWS rows), and one long enough.
        short = engine.encode([{"role": "user", "content": "Hi"}])[: native.MATMUL_ROWS - 1]
        long = engine.encode([{"role": "user", "content": "What does Compose do for a whole kitchen? " * 4}])
        with torch.inference_mode():
            for slot, prompt_ids in zip(slots, [short, long]):
                ids = torch.tensor([prompt_ids])
                lengths.append(ids.shape[1])
                prompt = (ids, torch.arange(ids.shape[1])[None], [slot])
                same_as_the_network(engine, *prompt, last_only=True)
                same_as_the_network(engine, *prompt)  # every position's logits
            assert min(lengths) < native.MATMUL_ROWS <= max(lengths)
            same_as_the_network(engine, torch.tensor([[5], [7]]), torch.tensor([[n] for n in lengths]), slots)
    finally:
        engine.close()


def grouped_buffers(net) -> list[tuple]:
    return [(m.bits, m.exact, m.weight, m.scales, m.offsets) for m in net.modules() if isinstance(m, GroupedLinear)]


def test_a_packing_is_saved_once_and_reused(tiny_model_dir, tmp_path, monkeypatch):
    hf_model = load_pretrained(str(tiny_model_dir))[0]
    saved = tmp_path / "packed.safetensors"
    first = grouped_buffers(quantize_cpu(from_hf(hf_model), "q4", saved))
    assert saved.exists() and len(first) == 2 * 4 + 1  # two layers of four matrices, and the head

    def no_packing(*_):
        raise AssertionError("a saved packing was packed again")

    monkeypatch.setattr(GroupedLinear, "pack", no_packing)
    again = grouped_buffers(quantize_cpu(from_hf(hf_model), "q4", saved))
    for (bits, exact, *tensors), (bits_again, exact_again, *tensors_again) in zip(first, again, strict=True):
        assert (bits, exact) == (bits_again, exact_again)
        assert all(a is b is None or torch.equal(a, b) for a, b in zip(tensors, tensors_again))


def test_a_damaged_packing_is_packed_again(tiny_model_dir, tmp_path):
    hf_model = load_pretrained(str(tiny_model_dir))[0]
    saved = tmp_path / "packed.safetensors"
    saved.write_bytes(b"not a safetensors file")
    net = quantize_cpu(from_hf(hf_model), "q4", saved)
    assert len(grouped_buffers(net)) == 9 and quantize.read_packing(saved)  # written anew
