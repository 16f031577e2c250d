"""A Llama-family decoder with a static, slotted KV cache.

Written for decoding, not training: every request owns one slot (one row) of
a pre-allocated KV cache, so requests of different lengths share a forward
pass, join and leave between steps, and nothing is re-encoded per token.
Weights come from the transformers model; the math follows it closely so that
greedy decoding gives the same token ids.
"""

from __future__ import annotations

import math
import mmap
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

SUPPORTED_ARCHITECTURES = ("llama", "mistral", "qwen2")


def zeros_on_demand(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A zero tensor whose memory a CPU only takes up as it is written.

    The KV cache for every slot at full context is most of the default
    model's memory (0.75 GB for 8 slots of 2048 tokens), yet a chat fills a
    few hundred positions of one slot. torch.zeros would write every byte;
    anonymous mmap pages read as zeros and become resident only when written.
    """
    if device.type != "cpu":
        return torch.zeros(shape, dtype=dtype, device=device)
    nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    return torch.frombuffer(mmap.mmap(-1, nbytes), dtype=dtype).view(shape)


@dataclass
class ModelArgs:
    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    intermediate_size: int
    norm_eps: float
    qkv_bias: bool
    out_bias: bool
    mlp_bias: bool

    @classmethod
    def from_hf_config(cls, config) -> "ModelArgs":
        if config.model_type not in SUPPORTED_ARCHITECTURES:
            raise ValueError(
                f"model_runtime runs {', '.join(SUPPORTED_ARCHITECTURES)} models; "
                f"this one is '{config.model_type}'"
            )
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        return cls(
            vocab_size=config.vocab_size,
            dim=config.hidden_size,
            n_layers=config.num_hidden_layers,
            n_heads=config.num_attention_heads,
            n_kv_heads=config.num_key_value_heads,
            head_dim=head_dim,
            intermediate_size=config.intermediate_size,
            norm_eps=config.rms_norm_eps,
            # Qwen2 has biases on its query, key and value projections; a Llama's attention_bias
            # adds them to all four attention projections, and mlp_bias to the feed-forward's.
            qkv_bias=config.model_type == "qwen2" or getattr(config, "attention_bias", False),
            out_bias=config.model_type != "qwen2" and getattr(config, "attention_bias", False),
            mlp_bias=getattr(config, "mlp_bias", False),
        )


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # One fused op, accumulating in float32 whatever the activation dtype, as transformers does.
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = args.n_heads, args.n_kv_heads, args.head_dim
        q, kv = args.n_heads * args.head_dim, args.n_kv_heads * args.head_dim
        self.wqkv = nn.Linear(args.dim, q + 2 * kv, bias=args.qkv_bias)
        self.wo = nn.Linear(q, args.dim, bias=args.out_bias)
        self.split = (q, kv, kv)
        self.k_cache: torch.Tensor | None = None
        self.v_cache: torch.Tensor | None = None

    def forward(self, x, cos, sin, mask, slots, write_at, kv_len, rows_are_slots):
        bsz, seqlen, _ = x.shape
        qk_dim = self.split[0] + self.split[1]
        qkv = self.wqkv(x)
        # Rotate queries and keys together: one set of element-wise ops, not two.
        # roll + a sign-folded sin table is transformers' rotate_half in one op.
        qk = qkv[..., :qk_dim].view(bsz, seqlen, -1, self.head_dim).transpose(1, 2)
        qk = qk * cos + qk.roll(self.head_dim // 2, -1) * sin
        q, k = qk.split((self.n_heads, self.n_kv_heads), dim=1)
        v = qkv[..., qk_dim:].view(bsz, seqlen, self.n_kv_heads, self.head_dim).transpose(1, 2)

        # Write this step's keys and values into each request's own slot...
        self.k_cache.view(-1, self.head_dim).index_copy_(0, write_at, k.reshape(-1, self.head_dim))
        self.v_cache.view(-1, self.head_dim).index_copy_(0, write_at, v.reshape(-1, self.head_dim))
        # ...and attend over the first kv_len positions of those slots. When the
        # batch's rows are slots 0..B-1 (the usual case) this is a view, not a copy.
        if rows_are_slots:
            keys, values = self.k_cache[:bsz, :, :kv_len], self.v_cache[:bsz, :, :kv_len]
        else:
            keys, values = self.k_cache[slots, :, :kv_len], self.v_cache[slots, :, :kv_len]
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, enable_gqa=True)
        return self.wo(out.transpose(1, 2).reshape(bsz, seqlen, -1))


class FeedForward(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.w13 = nn.Linear(args.dim, 2 * args.intermediate_size, bias=args.mlp_bias)
        self.w2 = nn.Linear(args.intermediate_size, args.dim, bias=args.mlp_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.w13(x).chunk(2, dim=-1)
        return self.w2(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.attention = Attention(args)
        self.feed_forward = FeedForward(args)
        self.attention_norm = RMSNorm(args.dim, args.norm_eps)
        self.ffn_norm = RMSNorm(args.dim, args.norm_eps)

    def forward(self, x, cos, sin, mask, slots, write_at, kv_len, rows_are_slots):
        h = x + self.attention(self.attention_norm(x), cos, sin, mask, slots, write_at, kv_len, rows_are_slots)
        return h + self.feed_forward(self.ffn_norm(h))


class Transformer(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.dim)
        self.layers = nn.ModuleList(Block(args) for _ in range(args.n_layers))
        self.norm = RMSNorm(args.dim, args.norm_eps)
        self.output = nn.Linear(args.dim, args.vocab_size, bias=False)
        self.cos_table: torch.Tensor | None = None
        self.sin_table: torch.Tensor | None = None

    def setup_cache(self, max_batch: int, max_seq_len: int, rotary_emb, dtype, device) -> None:
        """Allocate each slot's KV cache once, and the rotary table."""
        shape = (max_batch, self.args.n_kv_heads, max_seq_len, self.args.head_dim)
        caches = zeros_on_demand((len(self.layers), 2, *shape), dtype, device)
        for layer, (k_cache, v_cache) in zip(self.layers, caches):
            layer.attention.k_cache, layer.attention.v_cache = k_cache, v_cache
        positions = torch.arange(max_seq_len, device=device)[None]
        probe = torch.zeros(1, dtype=dtype, device=device)
        cos, sin = rotary_emb(probe, positions)  # the model's own rope, scaling included
        half = self.args.head_dim // 2
        # rotate_half(x) * sin == roll(x, half) * sin with its first half negated.
        sin = torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)
        self.cos_table, self.sin_table = cos[0].to(dtype), sin[0].to(dtype)

    def forward(
        self,
        tokens: torch.Tensor,  # [B, T] token ids
        positions: torch.Tensor,  # [B, T] position of each token in its request
        slots: torch.Tensor,  # [B] cache row of each request
        kv_len: int,  # attend over cache positions [0, kv_len)
        last_only: bool = False,  # prefill: logits for the last position only
        rows_are_slots: bool = False,  # slots == [0, 1, ..., B-1]: cache reads are views
    ) -> torch.Tensor:
        cos = self.cos_table[positions].unsqueeze(1)
        sin = self.sin_table[positions].unsqueeze(1)
        # Each token sees its own request's positions up to and including itself;
        # an additive mask built once a step, not converted in every layer.
        visible = (torch.arange(kv_len, device=tokens.device) <= positions[..., None]).unsqueeze(1)
        mask = torch.zeros(visible.shape, dtype=cos.dtype, device=tokens.device).masked_fill_(~visible, float("-inf"))
        # Rows of the cache, seen as [slot, kv head, position], that this step writes.
        n_kv, max_seq_len = self.args.n_kv_heads, self.cos_table.shape[0]
        heads = slots[:, None] * n_kv + torch.arange(n_kv, device=tokens.device)
        write_at = (heads[:, :, None] * max_seq_len + positions[:, None, :]).flatten()
        x = self.tok_embeddings(tokens)
        for layer in self.layers:
            x = layer(x, cos, sin, mask, slots, write_at, kv_len, rows_are_slots)
        if last_only:
            x = x[:, -1:]
        return self.output(self.norm(x)).float()


def from_hf(hf_model) -> Transformer:
    """Build a Transformer that shares (or fuses) the transformers model's weights."""
    args = ModelArgs.from_hf_config(hf_model.config)
    with torch.device("meta"):
        model = Transformer(args)
    hf = hf_model.model
    params = {
        "tok_embeddings.weight": hf.embed_tokens.weight,
        "norm.weight": hf.norm.weight,
        "output.weight": hf_model.lm_head.weight,
    }
    for i, layer in enumerate(hf.layers):
        att, mlp, p = layer.self_attn, layer.mlp, f"layers.{i}."
        params[p + "attention.wqkv.weight"] = torch.cat([att.q_proj.weight, att.k_proj.weight, att.v_proj.weight])
        if args.qkv_bias:
            params[p + "attention.wqkv.bias"] = torch.cat([att.q_proj.bias, att.k_proj.bias, att.v_proj.bias])
        params[p + "attention.wo.weight"] = att.o_proj.weight
        if args.out_bias:
            params[p + "attention.wo.bias"] = att.o_proj.bias
        params[p + "feed_forward.w13.weight"] = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])
        params[p + "feed_forward.w2.weight"] = mlp.down_proj.weight
        if args.mlp_bias:
            params[p + "feed_forward.w13.bias"] = torch.cat([mlp.gate_proj.bias, mlp.up_proj.bias])
            params[p + "feed_forward.w2.bias"] = mlp.down_proj.bias
        params[p + "attention_norm.weight"] = layer.input_layernorm.weight
        params[p + "ffn_norm.weight"] = layer.post_attention_layernorm.weight
    model.load_state_dict({k: v.detach() for k, v in params.items()}, assign=True)
    return model.eval().requires_grad_(False)
