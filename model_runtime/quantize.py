"""Weight-only quantization: int8 on the CPU, bitsandbytes on CUDA.

Decoding a small model reads every weight once per step, so on a CPU the
speed is bound by memory traffic: int8 weights move a quarter of the bytes of
float32 ones. PyTorch's int8 weight-pack kernel is fast only with bfloat16
activations, so each layer converts its input to bfloat16 and back.
"""

from __future__ import annotations

import torch
from torch import nn


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


def replace_linears(module: nn.Module, make) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            setattr(module, name, make(child))
        else:
            replace_linears(child, make)


def quantize_int8_cpu(model: nn.Module) -> nn.Module:
    replace_linears(model, Int8Linear)
    return model
