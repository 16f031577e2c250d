"""Fetch or convert a model ahead of time, so the app's first start is fast.

    python -m model_runtime.prepare                 # convert the embedded GGUF into the cache
    python -m model_runtime.prepare --model HuggingFaceTB/SmolLM2-360M-Instruct

Container images run this at build time to bake the converted weights, and
the CPU's C kernels (model_runtime/kernels.c), in.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import native
from .loading import ModelLoadError, converted_gguf, load_pretrained, resolve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--print-folder", action="store_true", help="print only the converted folder of a GGUF model")
    args = parser.parse_args(argv)
    source = resolve(args.model)
    try:
        if source.endswith(".gguf"):
            folder = converted_gguf(Path(source), report=lambda m: print(m, file=sys.stderr))
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


if __name__ == "__main__":
    sys.exit(main())
