"""Preparing the network for a CPU: float32 activations, int4 weights by default."""

from __future__ import annotations

import torch

from .quantize import quantize_cpu

BITS = {"auto": 4, "4bit": 4, "8bit": 8}
FORMATS = {4: "int4 weight-only, groups of 32", 8: "int8 weight-only, per channel"}


def prepare(net, hf_model, quantization: str, max_batch: int, max_seq_len: int, device: torch.device):
    bits = BITS.get(quantization)
    if bits:
        net = quantize_cpu(net, bits)
    net.setup_cache(max_batch, max_seq_len, hf_model.model.rotary_emb, torch.float32, device)
    details = {
        "backend": "cpu-eager",
        "dtype": "float32",
        "quantization": FORMATS[bits] if bits else "none",
        "cuda_graphs": False,
        "why_not_faster": "CUDA graphs need an NVIDIA GPU; none is available here",
    }
    return net, None, details
