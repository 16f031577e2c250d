"""Write random weights for a model folder that holds only a config and a tokenizer.

Decode speed depends on a model's shapes, not its weights, so a GPU check can
measure a model shaped like the embedded one without carrying its 100 MB file.
"""

import sys
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

folder = Path(sys.argv[1])
if not (folder / "model.safetensors").exists():
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder), dtype=torch.bfloat16)
    model.save_pretrained(folder)
print(folder)
