"""What one set of node parameters configures, for the node and the evaluator alike: the model
session (its merging, window, heads), the Reconstructor, and the frame rviz holds fixed. The
parameters themselves, their defaults and checks, are in vggt_ros.params; no ROS, no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vggt_ros.params import Value
from vggt_ros.stream_types import FLOW_HEAD, RECONSTRUCTOR_HEADS, SessionOptions


def merging_options(values: Mapping[str, Any]) -> dict[str, Value] | None:
    """The session's merging options from the merging.* parameters; None when merging is off."""
    if not values['merging.enabled']:
        return None
    prefix = 'merging.'
    return {
        name[len(prefix) :]: value
        for name, value in values.items()
        if name.startswith(prefix) and name != 'merging.enabled'
    }


def session_options(values: Mapping[str, Any]) -> SessionOptions:
    """The model session the parameters describe (node and evaluator alike)."""
    return SessionOptions(
        window=values['window_size'] or None,
        camera_cache=values['camera_cache'],
        merging=merging_options(values),
        precision=values['precision'],
        heads=(*RECONSTRUCTOR_HEADS, FLOW_HEAD)
        if values['pose_source'] == 'matches'
        else RECONSTRUCTOR_HEADS,
    )


def reconstructor_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """The Reconstructor's keyword arguments the parameters describe (node and evaluator alike):
    the model's image width, the tracking scale, multi-view depth and the session."""
    return {
        'image_width': values['image_width'],
        'tracking_scale': values['tracking_scale'],
        'multi_view_depth': values['multi_view_depth'],
        'options': session_options(values),
    }


def fixed_frame(values: Mapping[str, Any]) -> str:
    """The frame rviz should hold fixed: the root the node's outputs hang from in this tf_mode."""
    return {'odom': values['odom_frame'], 'map': values['map_frame']}.get(
        values['tf_mode'], values['world_frame']
    )
