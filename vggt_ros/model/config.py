"""The model's sizes and its merging options, without torch (no ROS either).

What the node's parameter table, the launch file and the evaluator's options need to know of
the model, importable where PyTorch is not installed (`ros2 launch` runs under the
distribution's Python).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StreamVGGTConfig:
    """Architecture hyper-parameters; the defaults are the official 1B model."""

    img_size: int = 518  # DINO pos-embed grid = img_size / patch_size
    patch_size: int = 14
    embed_dim: int = 1024
    depth: int = 24  # frame/global block pairs
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_register_tokens: int = 4
    dino_depth: int = 24
    dino_num_heads: int = 16
    rope_freq: float = 100.0
    camera_trunk_depth: int = 4
    camera_num_heads: int = 16
    camera_iterations: int = 4
    dpt_layers: tuple[int, ...] = (4, 11, 17, 23)
    dpt_features: int = 256
    dpt_out_channels: tuple[int, ...] = (256, 512, 1024, 1024)
    flow_head: bool = False  # heads.FlowHead, for models trained with matches (not VGGT's)


PRESETS = {
    'streamvggt-1b': StreamVGGTConfig(),
    # Same code at toy size, so tests of the streaming logic run in seconds.
    'tiny': StreamVGGTConfig(
        embed_dim=64,
        depth=4,
        num_heads=4,
        dino_depth=2,
        dino_num_heads=4,
        camera_trunk_depth=2,
        camera_num_heads=4,
        dpt_layers=(0, 1, 2, 3),
        dpt_features=16,
        dpt_out_channels=(16, 32, 64, 64),
    ),
    # Trained by the project itself (vggt-train) on 2 CPU cores at 112-168 px wide: 12 M
    # parameters, 24 MB shipped in fp16.
    'small': StreamVGGTConfig(
        embed_dim=192,
        depth=6,
        num_heads=6,
        dino_depth=6,
        dino_num_heads=6,
        camera_trunk_depth=1,
        camera_num_heads=6,
        dpt_layers=(1, 3, 4, 5),
        dpt_features=48,
        dpt_out_channels=(48, 96, 192, 192),
        flow_head=True,
    ),
}


@dataclass(frozen=True)
class MergingConfig:
    """Session option for token merging; vggt_ros.model.merging describes the partition.

    enabled: False behaves exactly as no merging, so a caller can keep its other options.
    merge_start: first global block that merges; earlier blocks cache whole frames.
    cell_size: side of the patch-grid cell that contributes one destination (FastVGGT: 2).
    protected_fraction: share of a frame's tokens that are never merged (FastVGGT: 0.1).
    merge_ratio: share of the sources that are merged, most similar first; 1.0 merges all, as
        FastVGGT's nominal 0.9 does in effect.
    seed: destination draw; frame t uses (seed, t), so a frame's pattern does not depend on
        when merging was switched on.
    """

    enabled: bool = True
    merge_start: int = 0
    cell_size: int = 2
    protected_fraction: float = 0.1
    merge_ratio: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.merge_start < 0 or self.seed < 0:
            raise ValueError(f'merge_start and seed must be >= 0, got {self}')
        if self.cell_size < 1:
            raise ValueError(f'cell_size must be >= 1, got {self.cell_size}')
        for name in ('protected_fraction', 'merge_ratio'):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f'{name} must be in [0, 1], got {getattr(self, name)}')


def as_merging_config(value: MergingConfig | Mapping[str, Any] | None) -> MergingConfig | None:
    """A config from a MergingConfig, a mapping of its fields (e.g. ROS parameters) or None."""
    if value is None or isinstance(value, MergingConfig):
        return value
    if isinstance(value, Mapping):
        return MergingConfig(**value)
    raise TypeError(f'merging must be a MergingConfig, a mapping or None, got {value!r}')
