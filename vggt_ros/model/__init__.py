"""StreamVGGT in pure PyTorch (no ROS): the model, its presets and streaming sessions.

The presets and merging options (config) import without torch, so that the parameter table and
the launch file work under a Python that has none; the model itself is imported on first use.
"""

from importlib import import_module
from typing import Any

from vggt_ros.model.config import PRESETS, MergingConfig, StreamVGGTConfig

_FROM_STREAMVGGT = ('StreamSession', 'StreamVGGT', 'autocast_dtype', 'default_device')

__all__ = ['MergingConfig', 'PRESETS', 'StreamVGGTConfig', *_FROM_STREAMVGGT]


def __getattr__(name: str) -> Any:
    if name in _FROM_STREAMVGGT:
        return getattr(import_module('vggt_ros.model.streamvggt'), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
