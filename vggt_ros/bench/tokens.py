"""A frame's token layout as the aggregator builds it: patch grid, special tokens, RoPE tables."""

from __future__ import annotations

import torch

from vggt_ros.model import StreamVGGTConfig
from vggt_ros.model.rope import RopeTables, rope_tables, token_positions


def patch_grid(config: StreamVGGTConfig, image_size: tuple[int, int]) -> tuple[int, int]:
    rows, cols = (side // config.patch_size for side in image_size)
    return rows, cols


def special_tokens(config: StreamVGGTConfig) -> int:
    """Camera token and registers, ahead of the patches (the aggregator's patch_start_idx)."""
    return 1 + config.num_register_tokens


def tokens_per_frame(config: StreamVGGTConfig, image_size: tuple[int, int]) -> int:
    rows, cols = patch_grid(config, image_size)
    return special_tokens(config) + rows * cols


def frame_rope(
    config: StreamVGGTConfig, image_size: tuple[int, int], device: torch.device | None = None
) -> RopeTables:
    """The RoPE tables of one frame's tokens, as the aggregator builds them."""
    rows, cols = patch_grid(config, image_size)
    positions = token_positions(rows, cols, special_tokens(config), device)
    return rope_tables(positions, config.embed_dim // config.num_heads, config.rope_freq)
