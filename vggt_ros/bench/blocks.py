"""Section 4: one global block at the 1B dimensions, ours vs the reference-style store.

Whole 1B steps are affordable here only at tiny P, where DINO, the MLPs and the heads dominate;
the cache lives in the global blocks. So one global block is timed alone at a realistic P
(518x392 by default), its cache pre-filled with random keys and values. Section 5a reuses these
pieces with merging on and off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from vggt_ros.bench.baselines import ReferenceStyleLayer, by_frame
from vggt_ros.bench.harness import check_settings, ratio, time_in_turn
from vggt_ros.bench.tokens import frame_rope, tokens_per_frame
from vggt_ros.model import StreamVGGTConfig
from vggt_ros.model.kv_cache import LayerKVCache
from vggt_ros.model.layers import Block, TokenMerger
from vggt_ros.model.rope import RopeTables

BLOCK_PRESET = 'streamvggt-1b'  # sections 4 and 5a: one global block of these dimensions


def global_block(config: StreamVGGTConfig) -> Block:
    """A global block as the aggregator builds it (QK-LayerNorm), with PyTorch's random init:
    timing does not depend on the weights."""
    block = Block(config.embed_dim, config.num_heads, config.mlp_ratio, qk_norm=True)
    return block.eval().requires_grad_(False)


def filled_cache(
    frame_tokens: list[int], config: StreamVGGTConfig, generator: torch.Generator
) -> LayerKVCache:
    """A full window (window = len(frame_tokens) frames, anchor first) of random keys and values:
    stepping that history through the block would give other values, not other times. Each
    timed step then evicts the oldest frame and appends one of the same size, so every repeat
    finds the same state (and pays our eviction, one frame's copy)."""
    heads = config.num_heads
    cache = LayerKVCache(window=len(frame_tokens))
    for tokens in frame_tokens:
        cache.new_frame()
        cache.extend(
            *torch.randn(2, 1, heads, tokens, config.embed_dim // heads, generator=generator)
        )
    return cache


def cached_step(
    block: Block,
    x: Tensor,
    rope: RopeTables,
    cache: LayerKVCache,
    merger: TokenMerger | None = None,
) -> Callable[[], Tensor]:
    """One frame through the block as a session steps it: open the frame, attend via the cache."""

    def step() -> Tensor:
        cache.new_frame()
        return block(x, rope, cache=cache, merger=merger)

    return step


def reference_step(
    block: Block, x: Tensor, rope: RopeTables, keys: Tensor, values: Tensor
) -> Callable[[], Tensor]:
    """One frame through the block with a reference-style store of the earlier frames' keys and
    values [1, heads, frames, P, head_dim]. torch.cat leaves those untouched, so a fresh store
    over them restores the state for every repeat without a copy."""

    def step() -> Tensor:
        return block(x, rope, cache=ReferenceStyleLayer(block.attn.k_norm, rope, keys, values))

    return step


def block_inputs(
    config: StreamVGGTConfig, image_size: tuple[int, int], generator: torch.Generator
) -> tuple[Block, Tensor, RopeTables]:
    """A global block, a new frame's tokens x [1, P, dim] and its RoPE tables."""
    tokens = tokens_per_frame(config, image_size)
    x = torch.randn(1, tokens, config.embed_dim, generator=generator)
    return global_block(config), x, frame_rope(config, image_size)


def block_vs_reference(
    config: StreamVGGTConfig,
    image_size: tuple[int, int],
    cached: int,
    repeats: int,
    seed: int = 0,
) -> dict[str, Any]:
    """Section 4: one global block's step at frame `cached` (attending over `cached` frames, the
    new one included), ours (window = `cached`, full) vs the reference-style store."""
    check_settings((cached,), repeats)
    generator = torch.Generator().manual_seed(seed)
    block, x, rope = block_inputs(config, image_size, generator)
    tokens = x.shape[1]
    with torch.inference_mode():
        cache = filled_cache([tokens] * cached, config, generator)
        earlier = (flat[:, : (cached - 1) * tokens] for flat in (cache.keys, cache.values))
        keys, values = (by_frame(flat, tokens) for flat in earlier)
        times = time_in_turn(
            {
                'ours': cached_step(block, x, rope, cache),
                'reference': reference_step(block, x, rope, keys, values),
            },
            repeats,
        )
    return {
        'image_size': list(image_size),
        'tokens_per_frame': tokens,
        'cached_frames': cached,
        'cached_tokens': cache.num_tokens,
        'repeats': repeats,
        'ours_s': times['ours'],
        'reference_s': times['reference'],
        'ratio': ratio(times['reference'], times['ours']),
    }
