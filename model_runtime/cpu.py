"""Preparing the network for a CPU: float32 activations, int8 weights by default."""

from __future__ import annotations

import torch

from .quantize import quantize_int8_cpu


def prepare(net, hf_model, quantization: str, max_batch: int, max_seq_len: int, device: torch.device):
    if quantization == "4bit":
        raise ValueError("4-bit weights run on CUDA (bitsandbytes); on a CPU choose 8bit, none or auto")
    quantized = quantization in ("auto", "8bit")
    if quantized:
        net = quantize_int8_cpu(net)
    net.setup_cache(max_batch, max_seq_len, hf_model.model.rotary_emb, torch.float32, device)
    details = {
        "backend": "cpu-eager",
        "dtype": "float32",
        "quantization": "int8 weight-only, per channel" if quantized else "none",
        "cuda_graphs": False,
        "why_not_faster": "CUDA graphs need an NVIDIA GPU; none is available here",
    }
    return net, None, details
