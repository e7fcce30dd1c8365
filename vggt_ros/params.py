"""Every parameter of the stream node: name, default, description, whether it can change at runtime,
and the check a value must pass.

This table is the single source of truth: the node declares its parameters from it, the evaluator
takes its options and defaults from it, and tests hold config/stream.yaml and
launch/stream.launch.py to it. Choices and bounds that the model defines (presets, precisions,
camera caches, merging) come from the model's own definitions. It imports no ROS, so the checks
can be used (and tested) anywhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vggt_ros.frame_size import MAX_TRACKING_SCALE, check_image_width
from vggt_ros.metric_scale import SCALE_SOURCES
from vggt_ros.model.config import PRESETS, MergingConfig
from vggt_ros.stream_types import (
    CAMERA_CACHES,
    PRECISIONS,
)
from vggt_ros.tf_layout import TF_MODES

Value = bool | int | float | str

NODE_NAME = 'vggt_stream'
MERGING = MergingConfig()  # the model's merging defaults
_DEVICE = re.compile(r'^(auto|cpu|cuda(:\d+)?)$')
POSE_SOURCES = ('camera_head', 'matches')


@dataclass(frozen=True)
class ParameterSpec:
    """One node parameter.

    Parameters that are not `dynamic` are read-only once the node runs: they shape the model, the
    topics or the buffers, which cannot change without a restart.
    """

    name: str
    default: Value
    description: str
    dynamic: bool = False
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    check: Callable[[Any], str | None] | None = field(default=None, compare=False)

    def validate(self, value: Any) -> str | None:
        """Why `value` is not acceptable for this parameter, or None if it is."""
        if type(value) is not type(self.default) and not (
            isinstance(self.default, float) and type(value) is int
        ):
            return f'{self.name} must be a {type(self.default).__name__}, got {value!r}'
        if isinstance(value, float) and not math.isfinite(value):
            return f'{self.name} must be a finite number, got {value!r}'
        if self.choices and value not in self.choices:
            return f'{self.name} must be one of {", ".join(self.choices)}, got {value!r}'
        if self.minimum is not None and value < self.minimum:
            return f'{self.name} must be at least {self.minimum}, got {value!r}'
        if self.maximum is not None and value > self.maximum:
            return f'{self.name} must be at most {self.maximum}, got {value!r}'
        return self.check(value) if self.check else None


MAX_WINDOW = 4096  # frames; a bounded cache is allocated whole on the first frame


def _window(value: int) -> str | None:
    if value == 1 or value < 0 or value > MAX_WINDOW:
        return (
            f'window_size must be 0 (unbounded: grows as needed) or 2 (the anchor frame and the '
            f'current one) to {MAX_WINDOW}, got {value}'
        )
    return None


def _image_width(value: int) -> str | None:
    try:
        check_image_width(value)
    except ValueError as error:
        return str(error)
    return None


def _device(value: str) -> str | None:
    if not _DEVICE.match(value):
        return f'device must be auto, cpu, cuda or cuda:N, got {value!r}'
    return None


def _merging_field(name: str) -> Callable[[Any], str | None]:
    """A check by the model's own MergingConfig, so its bounds are stated once."""

    def check(value: Any) -> str | None:
        try:
            MergingConfig(**{name: value})
        except ValueError as error:
            return f'merging.{error}'
        return None

    return check


def _not_empty(value: str) -> str | None:
    return None if value else 'a frame name cannot be empty'


# Each output and what its publish_* switch turns on.
OUTPUTS = {
    'tf': 'the pose on /tf, where tf_mode puts it',
    'depth': '~/depth (32FC1), ~/depth/camera_info and ~/camera_info (the same)',
    'confidence': '~/confidence (32FC1)',
    'points': '~/points (PointCloud2 in the camera frame)',
    'odometry': '~/odometry (nav_msgs/Odometry)',
    'path': '~/path (nav_msgs/Path)',
    'map': '~/map (accumulated PointCloud2 in the world frame)',
    'scale': '~/scale (the metric scale: source, estimate, spread; not with scale_source fixed)',
    'diagnostics': '/diagnostics (rate, latency, dropped frames, window, merging, device)',
}

PARAMETERS: tuple[ParameterSpec, ...] = (
    # The model.
    ParameterSpec(
        'checkpoint',
        '',
        'Weights: a .pth/.pt/.safetensors file or a Hugging Face id (lch01/StreamVGGT, '
        "facebook/VGGT-1B, owner/repo:file). Empty: the preset's shipped weights (small), else "
        'random weights (tiny only: pipeline checks).',
    ),
    ParameterSpec(
        'preset',
        'streamvggt-1b',
        'Model size: streamvggt-1b (the released model, needs a checkpoint), small (trained by '
        'this project, shipped; run it with config/small.yaml) or tiny (tests).',
        choices=tuple(PRESETS),
    ),
    ParameterSpec(
        'device',
        'auto',
        'Torch device: auto (cuda when available, else cpu), cpu, cuda, cuda:N.',
        check=_device,
    ),
    ParameterSpec(
        'precision',
        'auto',
        'Autocast precision: auto (bf16 on GPUs of compute capability 8+, fp16 below, fp32 on '
        'cpu), fp32, bf16 or fp16.',
        choices=PRECISIONS,
    ),
    ParameterSpec(
        'image_width',
        518,
        'Width the model sees, a multiple of 14 (at least 28); the height follows the aspect '
        'ratio (rounded to a multiple of 14, centre-cropped to at most the width). Smaller is '
        'faster, coarser.',
        check=_image_width,
    ),
    ParameterSpec(
        'window_size',
        16,
        'Frames kept in the key/value cache: the first frame (it anchors the world) and the most '
        'recent ones. Bounds memory and per-frame time. 0: unbounded (grows forever).',
        check=_window,
    ),
    ParameterSpec(
        'anchor.max_frames',
        0,
        'Re-anchor after this many frames since the anchor: a new session starts at a recent frame '
        'and is aligned to the old one, so an unbounded trajectory is never predicted against a '
        'frame it left long ago. 0: never.',
        dynamic=True,
        minimum=0,
    ),
    ParameterSpec(
        'anchor.max_distance',
        0.0,
        "Re-anchor once the camera is this many times the anchor's median depth away from it. "
        '0: never.',
        dynamic=True,
        minimum=0.0,
    ),
    ParameterSpec(
        'anchor.overlap',
        4,
        'Recent frames a new session is warm-started with when re-anchoring, and aligned on; '
        'the warm-start costs as many model steps, once per re-anchoring.',
        minimum=1,
        maximum=32,
    ),
    ParameterSpec(
        'camera_cache',
        'official',
        'Camera-head cache: official (as the released inference code) or causal.',
        choices=CAMERA_CACHES,
    ),
    ParameterSpec(
        'pose_source',
        'camera_head',
        "Where poses come from: camera_head (the model's), or matches: PnP on the flow head's "
        "matches to the session's first frame, refined in the images, on matches tracked "
        "from the previous frame, lifted with those frames' depth, and on points followed since "
        "first seen, refined with their depths over the baseline; the camera head's "
        "rotation where they are too few; where PnP gives the pose, the frame's depth is put "
        "into the first frame's scale (models with a flow head only, such as small; "
        'config/small.yaml sets it).',
        choices=POSE_SOURCES,
    ),
    ParameterSpec(
        'tracking_scale',
        1,
        'With pose_source matches, the frame is matched and tracked at this many times '
        'image_width while the model still sees image_width: finer poses for the cost of '
        "tracking alone. Outputs keep the model's size. 1: the model's image "
        '(config/small.yaml: 2, best measured; 3 and 4 did no better with a 448-px camera).',
        minimum=1,
        maximum=MAX_TRACKING_SCALE,
    ),
    ParameterSpec(
        'multi_view_depth',
        False,
        "With pose_source matches, each frame's depth is corrected where the session's recent "
        'frames, placed by their poses, show it: a sweep of depths per pixel, matched in the '
        "tracked images, smoothed into a correction of the model's depth. Frames turned by far "
        "more than they moved are not swept against (a turn in place keeps the model's depth); "
        'about 80 ms a frame at 224 px on a 2-core CPU (config/small.yaml: true).',
    ),
    ParameterSpec(
        'merging.enabled',
        False,
        'FastVGGT token merging in global attention: faster, slightly less accurate. Can be '
        'switched while streaming, without a reset.',
        dynamic=True,
    ),
    ParameterSpec(
        'merging.merge_start',
        MERGING.merge_start,
        'First global-attention block that merges tokens.',
        check=_merging_field('merge_start'),
    ),
    ParameterSpec(
        'merging.cell_size',
        MERGING.cell_size,
        'Side of the patch-grid cell that contributes one destination token.',
        check=_merging_field('cell_size'),
    ),
    ParameterSpec(
        'merging.protected_fraction',
        MERGING.protected_fraction,
        'Fraction of tokens that are never merged (a fixed stride), 0 to 1.',
        check=_merging_field('protected_fraction'),
    ),
    ParameterSpec(
        'merging.merge_ratio',
        MERGING.merge_ratio,
        'Fraction of the mergeable tokens that are merged, most similar first, 0 to 1.',
        check=_merging_field('merge_ratio'),
    ),
    # Input.
    ParameterSpec(
        'image_transport',
        'raw',
        'raw: subscribe to image (sensor_msgs/Image); compressed: to image/compressed '
        '(sensor_msgs/CompressedImage, jpeg or png), for cameras across a network.',
        choices=('raw', 'compressed'),
    ),
    ParameterSpec(
        'image_qos',
        'sensor_data',
        'QoS of the image subscription, keeping the newest frame only: sensor_data (best effort, '
        'REP-2003: matches any publisher) or reliable (only reliable publishers, which then '
        'resend lost fragments of large images).',
        choices=('sensor_data', 'reliable'),
    ),
    ParameterSpec(
        'frame_stride',
        1,
        'Use every n-th received image only; the others are skipped before the model.',
        dynamic=True,
        minimum=1,
    ),
    ParameterSpec(
        'max_image_pixels',
        40_000_000,
        'Images with more pixels (width x height, read from the header before decoding) are '
        'refused: corrupt headers and decompression bombs.',
        dynamic=True,
        minimum=1,
    ),
    ParameterSpec(
        'time_jump_tolerance',
        0.5,
        'Seconds a stamp may go back and still count as an out-of-order frame (skipped); a '
        'larger backward jump is a new stream, such as a looping bag, and starts a new world.',
        dynamic=True,
        minimum=0.0,
    ),
    # Frames and units.
    ParameterSpec(
        'tf_mode',
        'odom',
        'Where the pose goes in the TF tree (REP-105): odom publishes odom_frame -> base_frame '
        '(looking up the mount base_frame -> camera at the image stamp, so a moving mount is '
        'followed); map publishes map_frame -> odom_frame (wheel odometry owns odom -> base); '
        'camera publishes world_frame -> camera; none, no TF. odom falls back to camera after '
        'tf_timeout only if the camera frame has no parent.',
        choices=TF_MODES,
    ),
    ParameterSpec('odom_frame', 'odom', 'The odometry frame (REP-105).', check=_not_empty),
    ParameterSpec('base_frame', 'base_link', 'The robot body frame (REP-105).', check=_not_empty),
    ParameterSpec(
        'map_frame', 'map', 'The map frame (REP-105), for tf_mode map.', check=_not_empty
    ),
    ParameterSpec(
        'tf_timeout',
        2.0,
        'Seconds tf_mode odom waits for base_frame -> camera from the first frame on before it '
        'falls back to camera (only if the camera frame has no parent).',
        minimum=0.0,
    ),
    ParameterSpec(
        'world_frame',
        'vggt_world',
        'TF frame of the reconstruction: the first camera after a reset.',
        check=_not_empty,
    ),
    ParameterSpec(
        'camera_frame',
        '',
        'TF frame of the camera, an optical frame (z forward, x right, y down). Empty: the '
        "image header's frame_id (vggt_camera_optical_frame, with a warning, where that is "
        'empty too).',
    ),
    ParameterSpec(
        'world_axes',
        'optical',
        'Axes of world_frame: optical (those of the first camera) or ros (REP-103 x forward, '
        'y left, z up, assuming the first camera was level).',
        choices=('optical', 'ros'),
    ),
    ParameterSpec(
        'scale',
        1.0,
        'Multiplies translations, depth and points. The model scale is normalised, not metric: '
        'set it to metres per model unit when known. With scale_source depth or odometry: the '
        'guess until the first estimate.',
        dynamic=True,
        minimum=1e-9,
        maximum=1e6,  # beyond, float32 depth overflows
    ),
    ParameterSpec(
        'scale_source',
        'fixed',
        'Where metres come from: fixed (the scale parameter), depth (a metric depth image of the '
        'camera on the depth input, 32FC1 metres or 16UC1 millimetres, paired by stamp) or '
        'odometry (odom_frame -> base_frame from another odometry, e.g. wheels, with tf_mode '
        'map or none). Estimated per session; outputs are flagged not metric until then.',
        choices=SCALE_SOURCES,
    ),
    # Outputs.
    ParameterSpec(
        'conf_threshold',
        3.0,
        'Depth confidence (1 + exp, at least 1) below which depth is NaN and points are dropped; '
        '0 keeps every pixel.',
        dynamic=True,
        minimum=0.0,
    ),
    ParameterSpec(
        'depth.registered',
        False,
        "Also publish depth at the camera image's resolution and frame on "
        "~/depth_registered/image, with the camera's own CameraInfo (from the camera_info "
        "input, paired by stamp) on ~/depth_registered/camera_info: the model's crop and resize "
        'undone, for depth_image_proc with the colour image.',
    ),
    ParameterSpec(
        'points.decimation',
        1,
        'Keep every n-th row and column in ~/points (the cloud stays organised).',
        dynamic=True,
        minimum=1,
    ),
    ParameterSpec(
        'path.max_length', 1000, 'Poses kept in ~/path (the oldest go first).', minimum=1
    ),
    ParameterSpec(
        'odometry.step_error',
        0.2,
        "The error ~/odometry's covariances claim for each frame's motion, as a fraction of it "
        '(translation and rotation alike, over a floor of 5 mm and 0.1 deg a frame at 15 Hz, a '
        'random walk in time); the pose covariance grows by it from the odom origin. 0.2 is '
        "above the shipped small model's error per axis on 10 of the 12 held-out walks and "
        "orbits (0.07-0.36), the floor above its turns' (2-5 mm, 0.04-0.08 deg). An unknown "
        'twist (the first frame, after a reset) claims 9999.',
        dynamic=True,
        minimum=0.0,
        maximum=10.0,
    ),
    ParameterSpec(
        'map.voxel_size',
        0.02,
        'Voxel edge of the accumulated ~/map, in output units (after scale).',
        minimum=1e-3,  # the map spans 2**20 voxels each way from the origin
    ),
    ParameterSpec(
        'map.max_points', 200000, 'Points kept in ~/map (the oldest voxels go first).', minimum=1
    ),
    ParameterSpec('map.period', 2.0, 'Seconds between ~/map messages.', minimum=0.01),
    ParameterSpec(
        'diagnostics_period',
        1.0,
        'Seconds between /diagnostics messages.',
        minimum=0.01,
        maximum=1e6,  # a ROS timer counts int64 nanoseconds
    ),
    *(
        ParameterSpec(f'publish_{output}', True, f'Publish {what}.', dynamic=True)
        for output, what in OUTPUTS.items()
    ),
)

SPECS: dict[str, ParameterSpec] = {spec.name: spec for spec in PARAMETERS}
DEFAULTS: dict[str, Value] = {spec.name: spec.default for spec in PARAMETERS}


def validate(values: Mapping[str, Any]) -> str | None:
    """Why these values cannot be used (the first problem found), or None if they all can."""
    for name, value in values.items():
        spec = SPECS.get(name)
        if spec is None:
            return f'unknown parameter {name!r}'
        reason = spec.validate(value)
        if reason:
            return reason
    return None


def coerce(values: Mapping[str, Any]) -> dict[str, Any]:
    """The values with an integer given for a float parameter turned into that float."""
    return {
        name: float(value)
        if type(value) is int and isinstance(DEFAULTS.get(name), float)
        else value
        for name, value in values.items()
    }


def validate_combination(values: Mapping[str, Any]) -> str | None:
    """Why these values cannot be used together, or None; `values` is a complete set."""
    camera = values['camera_frame']
    if camera and camera == values['world_frame']:
        return f'camera_frame and world_frame are both {camera!r}: a frame cannot be its own parent'
    max_frames, overlap = values['anchor.max_frames'], values['anchor.overlap']
    if max_frames and max_frames <= overlap:
        return (
            f'anchor.max_frames ({max_frames}) must be 0 or more than anchor.overlap ({overlap}): '
            f'a new anchor is already that many frames old'
        )
    if values['scale_source'] == 'odometry' and values['tf_mode'] in ('odom', 'camera'):
        return (
            'scale_source odometry reads odom_frame -> base_frame -> camera from another '
            f'odometry, but tf_mode {values["tf_mode"]} would publish an edge of that chain '
            '(a second parent): use tf_mode map (wheel odometry owns odom) or none'
        )
    preset = values['preset']
    if values['pose_source'] == 'matches' and not PRESETS[preset].flow_head:
        return (
            f'pose_source matches needs a model with a flow head, and the {preset} preset has '
            'none: use pose_source camera_head, or preset small'
        )
    robot = {'odom': ('odom_frame', 'base_frame'), 'map': ('odom_frame', 'base_frame', 'map_frame')}
    frames = ('world_frame', *robot.get(values['tf_mode'], ()))
    named = [values[name] for name in frames]
    if len(set(named)) < len(named):
        return f'{", ".join(frames)} must all differ, got {", ".join(map(repr, named))}'
    return None


def combination_warning(values: Mapping[str, Any]) -> str | None:
    """What a valid but surely unintended combination will do, to say at startup."""
    if values['tf_mode'] == 'map' and values['scale_source'] == 'fixed' and values['scale'] == 1:
        return (
            "tf_mode map corrects the wheels' metres with the model's pose, but its scale is "
            "the model's own (scale_source fixed, scale 1): map -> odom will be wrong; use "
            'scale_source odometry (from those wheels) or depth, or set scale to metres per '
            'model unit'
        )
    if values['multi_view_depth'] and values['pose_source'] != 'matches':
        return (
            'multi_view_depth sweeps the recent frames at the poses from matches, and '
            f"pose_source is {values['pose_source']}: the depth stays the model's (set "
            'pose_source matches, as config/small.yaml does)'
        )
    return None
