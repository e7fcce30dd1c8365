"""Transformer building blocks shared by DINOv2, the aggregator and the camera trunk.

One Attention/Block pair serves all three; flags choose QK-LayerNorm, the LayerNorm eps and the
LayerScale init, and callers pass RoPE tables, a mask or a key/value cache per call.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vggt_ros.model.rope import RopeTables, apply_rope


class KVStore(Protocol):
    """What attention needs from a cache: store the new keys/values, return all valid ones."""

    def extend(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]: ...


class TokenMerge(Protocol):
    """A plan that shortens a token sequence before attention and restores it afterwards."""

    def merge(self, x: Tensor) -> Tensor: ...

    def unmerge(self, x: Tensor) -> Tensor: ...


class TokenMerger(Protocol):
    """Makes a block's TokenMerge from the attention input (e.g. FastVGGT's FramePartition)."""

    def match(self, metric: Tensor) -> TokenMerge: ...


def frame_causal_mask(
    frames: int, tokens_per_frame: int, device: torch.device | None = None
) -> Tensor:
    """Boolean [F*T, F*T] mask, True where a token may attend: its own frame and earlier ones."""
    frame_of = torch.arange(frames, device=device).repeat_interleave(tokens_per_frame)
    return frame_of[:, None] >= frame_of[None, :]


class LayerScale(nn.Module):
    """Per-channel residual-branch gain (CaiT); `gamma` is the checkpoint name."""

    def __init__(self, dim: int, init_values: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init_values))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    """Linear -> exact GELU -> Linear."""

    def __init__(
        self, in_features: int, hidden_features: int, out_features: int | None = None
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features or in_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head self-attention with optional QK-LayerNorm, 2-D RoPE, mask and KV cache.

    Order per the reference: qkv projection, q/k LayerNorm, RoPE; only then does a cache receive
    the keys, so cached keys are never normalised or rotated again. A merger (token merging)
    shortens q, k and v at that point too, so the cache holds the merged keys/values; the output
    is unmerged back to all input tokens.
    """

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = False) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.q_norm = nn.LayerNorm(head_dim) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(head_dim) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(
        self,
        x: Tensor,
        rope: RopeTables | None = None,
        attn_mask: Tensor | None = None,
        cache: KVStore | None = None,
        merger: TokenMerger | None = None,
    ) -> Tensor:
        batch, tokens, dim = x.shape
        merge = merger.match(x) if merger is not None else None
        q, k, v = (
            self.qkv(x)
            .reshape(batch, tokens, 3, self.num_heads, -1)
            .permute(2, 0, 3, 1, 4)
            .unbind(0)
        )
        q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rope(q, rope), apply_rope(k, rope)
        if merge is not None:
            q, k, v = merge.merge(q), merge.merge(k), merge.merge(v)
        if cache is not None:
            k, v = cache.extend(k, v)
        x = attend(q, k, v, attn_mask)
        x = self.proj(x.transpose(1, 2).reshape(batch, -1, dim))
        return x if merge is None else merge.unmerge(x)


def attend(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None) -> Tensor:
    """Scaled dot-product attention; in fp32 on a CPU, where PyTorch's bf16 attention kernel is
    slower than its fp32 one (its backward 2.6x on this project's CPU) while bf16 matmuls are
    twice as fast."""
    if q.device.type == 'cpu' and torch.is_autocast_enabled('cpu'):
        with torch.autocast('cpu', enabled=False):
            return F.scaled_dot_product_attention(
                q.float(), k.float(), v.float(), attn_mask=attn_mask
            )
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)


class Block(nn.Module):
    """Pre-norm transformer block: x + ls1(attn(norm1(x))), then x + ls2(mlp(norm2(x)))."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        init_values: float = 0.01,
        qk_norm: bool = False,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qk_norm=qk_norm)
        self.ls1 = LayerScale(dim, init_values)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, init_values)

    def forward(
        self,
        x: Tensor,
        rope: RopeTables | None = None,
        attn_mask: Tensor | None = None,
        cache: KVStore | None = None,
        merger: TokenMerger | None = None,
    ) -> Tensor:
        x = x + self.ls1(self.attn(self.norm1(x), rope, attn_mask, cache, merger))
        return x + self.ls2(self.mlp(self.norm2(x)))
