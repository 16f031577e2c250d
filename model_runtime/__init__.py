"""model_runtime: the playground's own inference engine.

    engine = model_runtime.load()                 # the embedded SmolLM2-135M-Instruct
    for event in engine.stream([{"role": "user", "content": "Hi!"}]):
        print(event.text, end="")

model.py holds the network, engine.py the scheduler and decode loop,
sampling.py the token choice, quantize.py the weight formats, loading.py
where weights come from, and cuda_graphs.py the GPU decode step.
"""

from __future__ import annotations

import importlib
from functools import partial
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .engine import Engine

# load()'s weight choices; app.py's --quantization offers these.
QUANTIZATIONS = {
    "auto": "the smallest format that holds the checkpoint exactly: a GGUF's own 4- and 8-bit groups on an "
    "x86 CPU (float16, or int4, without the C kernels); NF4 on CUDA",
    "4bit": "4-bit groups: Q4_1 on a CPU (int4 without the C kernels), NF4 on CUDA",
    "8bit": "8-bit groups: Q8_0 on a CPU (int8 without the C kernels), bitsandbytes int8 on CUDA",
    "none": "the checkpoint's weights: float32 on a CPU, bfloat16 on CUDA",
}
CPU_CONTEXT = 2048  # a 2048-token KV cache for 8 slots is ~0.75 GB for the default model
GPU_CONTEXT = 8192

# The engine's names load on first use, so that reading QUANTIZATIONS imports no torch:
# on a ZeroGPU Space the app must import `spaces` before torch.
_EXPORTS = {"Engine": "engine", "Event": "engine", "Stats": "engine", "Stream": "engine", "Completion": "engine", "EngineBusy": "engine",
            "GenerationParams": "sampling", "ModelLoadError": "loading"}
__all__ = ["load", "QUANTIZATIONS", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load(
    model: str = "default",
    *,
    quantization: str = "auto",
    device: str = "auto",
    max_batch: int = 8,
    max_seq_len: int | None = None,
    cuda_graphs: bool = True,
    background: bool = True,
    reuse_prefixes: bool = True,
    speculate: bool = True,
    max_waiting: int | None = None,
    report: Callable[[str], None] = lambda _: None,
) -> Engine:
    """Load `model` and return a running Engine.

    model: "default", a Hugging Face hub id, a local model folder or a .gguf file.
    quantization: one of QUANTIZATIONS. "auto" needs AVX2 and a C compiler for
    the C kernels (see native.py); layers a group format cannot hold exactly
    stay float16.
    cuda_graphs=False decodes eagerly on CUDA (for comparisons).
    background=False starts no thread of the engine's own: reading a stream runs
    the scheduler's step in the reader's thread (for ZeroGPU, where the GPU exists
    only inside a @spaces.GPU call).
    reuse_prefixes=False prefills every prompt whole, even where a free slot
    still holds its start (the next turn of a conversation).
    speculate=False drafts no tokens by prompt lookup (speculate.py); where the
    backend cannot check drafts exactly, info() says why they are off.
    max_waiting: requests that may wait for a slot before stream() raises EngineBusy.
    """
    import torch

    from .engine import Engine, ModelFacts
    from .loading import load_pretrained
    from .model import from_hf

    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {', '.join(QUANTIZATIONS)}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cpu":
        from .cpu import CpuBackend as backend_for
    elif device.type == "cuda":
        from .cuda_graphs import CudaBackend

        backend_for = partial(CudaBackend, device=device, use_graphs=cuda_graphs)
    else:
        raise ValueError(f"device must be auto, cpu or cuda, not {device}")

    hf_model, tokenizer, name = load_pretrained(model, report=report)
    facts = ModelFacts.of(hf_model, tokenizer, name)
    limit = CPU_CONTEXT if device.type == "cpu" else GPU_CONTEXT
    max_seq_len = max_seq_len or min(facts.context_length or CPU_CONTEXT, limit)
    report(f"Preparing {name} for {device.type}…")
    # The backend keeps the weights it decodes with; the transformers model goes when this returns.
    backend = backend_for(from_hf(hf_model), hf_model, quantization, max_batch, max_seq_len)
    return Engine(backend, tokenizer, facts=facts, background=background, reuse_prefixes=reuse_prefixes,
                  speculate=speculate, max_waiting=max_waiting)
