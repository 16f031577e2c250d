"""Fetch or convert a model ahead of time, so the app's first start is fast.

    python -m model_runtime.prepare                 # convert the embedded GGUF into the cache
    python -m model_runtime.prepare --model HuggingFaceTB/SmolLM2-360M-Instruct

Container images run this at build time to bake the converted weights, the
CPU's C kernels (model_runtime/kernels.c) and their packing of a GGUF's
weights in.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import native
from .cpu import saved_packing, weight_format
from .loading import ModelLoadError, converted_gguf, load_pretrained, resolve
from .model import from_hf
from .quantize import quantize_cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--print-folder", action="store_true", help="print only the converted folder of a GGUF model")
    args = parser.parse_args(argv)
    source = resolve(args.model)
    try:
        if source.endswith(".gguf"):
            folder = converted_gguf(Path(source), report=lambda m: print(m, file=sys.stderr))
            pack_for_cpu(folder)
            print(folder if args.print_folder else f"ready: {folder}")
        else:
            load_pretrained(source, report=lambda m: print(m, file=sys.stderr))
            print(f"ready: {source}")
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problem = native.why_unavailable()
    print("C kernels: ready" if problem is None else f"C kernels: not built ({problem})", file=sys.stderr)
    return 0


def pack_for_cpu(folder: Path) -> None:
    """Pack the CPU default's grouped weights and save them beside the converted GGUF: a start then reads them."""
    weights = weight_format("auto")
    hf_model = load_pretrained(str(folder))[0]
    saved = saved_packing(hf_model.name_or_path, weights)
    if saved is not None and not saved.exists():
        quantize_cpu(from_hf(hf_model), weights, saved)


if __name__ == "__main__":
    sys.exit(main())
