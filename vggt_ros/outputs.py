"""What the node publishes for one frame, computed from a FrameResult: pure numpy, no ROS.

The model speaks in its own conventions (world = first camera, OpenCV axes, normalised scale, a
confidence per pixel). This module turns that into the published conventions: the world in optical
or REP-103 axes, a user scale, NaN depth below the confidence threshold (REP-118), and points in
the camera's optical frame. Each quantity is computed on first use only, so a node with no
subscriber for an output pays nothing for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from vggt_ros.reconstructor import FrameResult

WORLD_AXES = ('optical', 'ros')

# Rows: the REP-103 body axes (x forward, y left, z up) written in optical axes (x right, y down,
# z forward). A level camera looks along body x, its right is body -y and its down is body -z.
BODY_FROM_OPTICAL = np.array(
    [
        [0.0, 0.0, 1.0, 0.0],
        [-1.0, 0.0, 0.0, 0.0],
        [0.0, -1.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


@dataclass(frozen=True)
class OutputOptions:
    """The parameters that shape the outputs (see vggt_ros.params)."""

    conf_threshold: float = 0.0
    scale: float = 1.0
    world_axes: str = 'optical'
    decimation: int = 1

    def __post_init__(self) -> None:
        if self.world_axes not in WORLD_AXES:
            raise ValueError(f'world_axes must be one of {WORLD_AXES}, got {self.world_axes!r}')
        if self.scale <= 0 or self.decimation < 1:
            raise ValueError(f'scale must be > 0 and decimation >= 1, got {self}')


def world_change(world_axes: str) -> np.ndarray:
    """4x4 taking points in the model's world (first camera, optical axes) to `world_axes`."""
    return BODY_FROM_OPTICAL if world_axes == 'ros' else np.eye(4)


def scaled_pose(world_from_camera: np.ndarray, world_axes: str, scale: float) -> np.ndarray:
    """The camera pose to publish as world_frame -> camera_frame.

    The camera frame stays optical; only the world is re-expressed, and only translations scale
    (rotations have no unit).
    """
    pose = world_change(world_axes) @ world_from_camera
    pose[:3, 3] *= scale
    return pose


def transform_points(parent_from_child: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 rigid transform to ...x3 points."""
    rotation, translation = parent_from_child[:3, :3], parent_from_child[:3, 3]
    return (points @ rotation.T + translation).astype(points.dtype, copy=False)


class FrameOutputs:
    """The published quantities of one frame, each computed on first access."""

    def __init__(self, result: FrameResult, options: OutputOptions) -> None:
        self.result = result
        self.options = options

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of depth, confidence and the organised cloud before decimation."""
        return self.result.depth.shape

    @cached_property
    def pose(self) -> np.ndarray:
        """world_frame <- camera_frame, 4x4."""
        opts = self.options
        return scaled_pose(self.result.world_from_camera, opts.world_axes, opts.scale)

    @cached_property
    def valid(self) -> np.ndarray:
        """HxW: pixels whose depth is confident enough, positive and finite."""
        result = self.result
        depth = result.depth
        return (result.confidence >= self.options.conf_threshold) & (depth > 0) & np.isfinite(depth)

    @cached_property
    def depth(self) -> np.ndarray:
        """HxW float32 z-depth in output units, NaN where not valid."""
        depth = self.result.depth * np.float32(self.options.scale)
        return np.where(self.valid, depth, np.float32(np.nan)).astype(np.float32, copy=False)

    @cached_property
    def camera_points(self) -> np.ndarray:
        """HxWx3 float32 points in the camera's optical frame, NaN where not valid.

        Unprojected from the published depth with the published intrinsics, so a consumer of
        ~/depth + ~/depth/camera_info (e.g. depth_image_proc) gets the very same points.
        """
        depth = self.depth
        K = self.result.K.astype(np.float32, copy=False)
        # Pixel (u, v) at integer coordinates, as the model's depth_to_camera_points.
        v, u = np.indices(depth.shape, dtype=np.float32)
        x = (u - K[0, 2]) * depth / K[0, 0]
        y = (v - K[1, 2]) * depth / K[1, 1]
        return np.stack((x, y, depth), axis=-1)

    def cloud(self) -> tuple[np.ndarray, np.ndarray]:
        """The organised cloud (points, colours), every `decimation`-th row and column."""
        step = self.options.decimation
        return self.camera_points[::step, ::step], self.result.colours[::step, ::step]

    def world_points(self) -> tuple[np.ndarray, np.ndarray]:
        """Nx3 valid points in the published world frame and their Nx3 uint8 colours."""
        valid = self.valid
        return transform_points(self.pose, self.camera_points[valid]), self.result.colours[valid]
