"""StreamVGGT in pure PyTorch (no ROS): the model, its presets and streaming sessions."""

from vggt_ros.model.merging import MergingConfig
from vggt_ros.model.streamvggt import (
    PRESETS,
    StreamSession,
    StreamVGGT,
    StreamVGGTConfig,
    autocast_dtype,
    default_device,
)

__all__ = [
    'MergingConfig',
    'PRESETS',
    'StreamSession',
    'StreamVGGT',
    'StreamVGGTConfig',
    'autocast_dtype',
    'default_device',
]
