"""A tiny random Llama with a real byte-level BPE tokenizer and a chat template.

Built from scratch in a second, so tests exercise the real loading,
tokenizing and decoding code without any download.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CORPUS = [
    "A container packs an app with everything it needs, so it runs the same everywhere.",
    "An image is the recipe; a container is the meal cooked from it.",
    "Compose starts the whole kitchen with one command: docker compose up.",
    "Kubernetes is air traffic control for containers across many machines.",
    "Port 7860 is where Gradio listens; map it with -p 7860:7860.",
    "Hello! How are you today? I am fine, thank you. Ünïcödé and emoji 🚢 too.",
]


def build_tokenizer() -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(CORPUS * 4, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", bos_token="<|im_start|>", pad_token="<|endoftext|>"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


ARCHITECTURES = {  # name -> config class, model class, extra config
    "llama": (LlamaConfig, LlamaForCausalLM, {}),
    "llama with biases": (LlamaConfig, LlamaForCausalLM, {"attention_bias": True, "mlp_bias": True}),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM, {}),  # biases on the query, key and value projections
}


def build_tiny_model(folder: Path, seed: int = 0, architecture: str = "llama") -> Path:
    """Save a random two-layer model of `architecture` (see ARCHITECTURES) and its tokenizer to `folder`."""
    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    config_class, model_class, extra = ARCHITECTURES[architecture]
    config = config_class(
        **extra,
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rope_theta=10000.0,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = model_class(config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(".bias"):  # initialised to zero, where a mistake with them would not show
                parameter.normal_(0, 0.5)
        # Random init gives near-uniform logits; sharpen them so greedy choices
        # are clear-cut and sampling has some shape.
        model.lm_head.weight.mul_(30)
        # A zero end-of-turn row scores 0 while the best other token scores well
        # above it: replies run to their token limit, as long tests need.
        model.lm_head.weight[tokenizer.eos_token_id] = 0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
