"""One camera frame in, one FrameResult out: preprocessing, device, precision, streaming session.

This is the ROS-free core that the node, the evaluation and the benchmarks share.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vggt_ros.checkpoints import load_model
from vggt_ros.frame_size import (
    check_image_width,
    check_tracking_scale,
    model_size,
    resized_height,
)
from vggt_ros.model import StreamVGGT
from vggt_ros.model.config import MergingConfig
from vggt_ros.model.geometry import pose_encoding_to_extri_intri, to_homogeneous
from vggt_ros.plane_sweep import RECENT_FRAMES, RecentFrame, corrected_depth
from vggt_ros.pose_from_matches import (
    FirstFrame,
    PreviousFrame,
    depth_scale,
    grey,
    image_step,
    level_depth,
    solve_pose,
)
from vggt_ros.stream_types import FLOW_HEAD, RECONSTRUCTOR_HEADS, FrameResult, SessionOptions
from vggt_ros.tracks import Tracks, straightened_depth


def check_rgb(rgb: np.ndarray) -> None:
    """Raise a clear error unless rgb is a non-empty HxWx3 uint8 array."""
    if not isinstance(rgb, np.ndarray):
        raise TypeError(f'expected a numpy HxWx3 uint8 image, got {type(rgb).__name__}')
    if rgb.dtype != np.uint8:
        raise ValueError(f'expected a uint8 RGB image, got dtype {rgb.dtype}')
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f'expected an HxWx3 RGB image, got shape {rgb.shape}')
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f'empty image, shape {rgb.shape}')


def preprocess(
    rgb: np.ndarray, image_width: int, device: torch.device | str = 'cpu', scale: int = 1
) -> Tensor:
    """HxWx3 uint8 -> [3, H, W] float in [0, 1] on `device`, at model_size(): what the model sees
    (streaming and training alike); at `scale` times it, the same view (resized and cropped as at
    the model's size, so registration's geometry holds at every scale).

    Resizing on the device keeps the CPU free; ImageNet normalisation happens inside the model.
    """
    check_rgb(rgb)
    height, width = rgb.shape[:2]
    model_size(height, width, image_width)  # a size the model can use, or FrameSizeError
    resized = resized_height(height, width, image_width)
    if not rgb.flags.writeable:  # e.g. a view of a ROS message buffer; torch wants to own it
        rgb = rgb.copy()
    pixels = torch.from_numpy(np.ascontiguousarray(rgb)).to(device)
    image = pixels.permute(2, 0, 1).float() / 255
    if (resized * scale, image_width * scale) != (height, width):
        image = resized_image(image, (resized * scale, image_width * scale))
    top = max(resized - image_width, 0) // 2
    return image[:, top * scale : (top + image_width) * scale]


def resized_image(image: Tensor, size: tuple[int, int]) -> Tensor:
    """A [3, H, W] image in [0, 1] resized to `size` as the reference preprocessing resizes."""
    resized = F.interpolate(
        image[None], size=size, mode='bicubic', align_corners=False, antialias=True
    )
    return resized[0].clamp_(0, 1)


def to_rgb8(image: Tensor) -> np.ndarray:
    """A model input [3, H, W] in [0, 1] (see `preprocess`) -> HxWx3 uint8 on the host: the
    colours a FrameResult carries, and what poses from matches track in."""
    return image.permute(1, 2, 0).mul(255).round().to(torch.uint8).cpu().numpy()


@dataclass(frozen=True)
class TrackingFrame:
    """A frame as poses from matches see it: at an integer multiple of the model's size.

    The model reads geometry from a small image; where the camera gives more pixels, matching
    in them is finer at the cost of tracking alone (Lucas-Kanade), not of the model: a turn
    moves the image by a fraction of a pixel per frame at 112 px. The model's depth and its
    flow head's patch matches are carried up bilinearly; the depth comes back down by the mean
    of each block of pixels.
    """

    image: np.ndarray  # HxW uint8 grey
    depth: np.ndarray  # HxW
    flow: np.ndarray  # [P, 2] per patch of this size (model.config.patch_size pixels), in patches
    K: np.ndarray
    scale: int

    @classmethod
    def of(
        cls, tracked: np.ndarray, K: np.ndarray, flow: np.ndarray, depth: np.ndarray, patch: int
    ) -> TrackingFrame:
        """`tracked` (a preprocessed frame as HxWx3 uint8 RGB), and the model's K, `flow` [P, 2]
        and HxW `depth` for it at the model's size."""
        height, width = tracked.shape[:2]
        scale = width // depth.shape[1]
        if scale > 1:
            K = K * np.array([[scale], [scale], [1.0]])  # fov-based: its rows scale with the size
            rows, columns = depth.shape[0] // patch, depth.shape[1] // patch
            grid = flow.reshape(rows, columns, 2)
            finer = (columns * scale, rows * scale)
            flow = cv2.resize(grid, finer, interpolation=cv2.INTER_LINEAR).reshape(-1, 2) * scale
            depth = cv2.resize(depth, (width, height), interpolation=cv2.INTER_LINEAR)
        return cls(grey(tracked), depth, flow, K, scale)

    def model_sized(self, depth: np.ndarray) -> np.ndarray:
        """A depth of this frame's size back at the model's."""
        if self.scale == 1:
            return depth
        height, width = (side // self.scale for side in depth.shape)
        return cv2.resize(depth, (width, height), interpolation=cv2.INTER_AREA)


# What poses from matches carry from frame to frame (replaced, never changed in place), put back
# when a frame fails after the model ran.
_MATCHES_STATE = (
    '_first',
    '_first_extrinsic',
    '_previous',
    '_head_correction',
    '_image_step',
    '_depth_tilt',
    '_recent',
)


class Reconstructor:
    """Streams frames through a StreamVGGT session; `reset()` starts a new world.

    Poses come from the camera head. With the flow head among the session's heads, the world is
    the session's first camera, and each later frame's pose in it is solved from the frame's
    matches to the first frame, refined in the two images, its matches tracked from the
    previous frame, lifted with those frames' depth, and the session's tracks, points followed
    since first seen whose depths are corrected as their baseline grows
    (pose_from_matches.solve_pose, tracks.Tracks), falling back to the head's rotation. Each
    later frame's depth is levelled for the content's last step across the image
    (pose_from_matches.level_depth) and, where PnP gave the pose, straightened by the tracks
    whose depths are sure (tracks.straightened_depth) and put into the first frame's units,
    those of the translations (pose_from_matches.depth_scale), and, with `multi_view_depth`,
    corrected in shape where the session's recent frames show it (plane_sweep.corrected_depth)
    and put back into those units before it is handed on. All of that runs on the frame at
    `tracking_scale` times the model's size (TrackingFrame); the results keep the model's.
    """

    def __init__(
        self,
        model: StreamVGGT,
        *,
        image_width: int = 518,
        tracking_scale: int = 1,
        multi_view_depth: bool = False,
        options: SessionOptions | None = None,
        **fields: Any,
    ) -> None:
        """`options` (default: the heads the outputs need, RECONSTRUCTOR_HEADS), with any
        SessionOptions field overridden by `fields`. With the flow head, poses from matches
        track the frame at `tracking_scale` times `image_width` (see TrackingFrame), and with
        `multi_view_depth` correct each frame's depth by its recent frames (plane_sweep)."""
        check_image_width(image_width)
        check_tracking_scale(tracking_scale)
        options = replace(options or SessionOptions(heads=RECONSTRUCTOR_HEADS), **fields)
        if not {'camera', 'depth'} <= set(options.heads):
            raise ValueError(
                f'a Reconstructor needs the camera and depth heads, got {options.heads}'
            )
        self.model = model
        self.image_width = image_width
        # Only poses from matches look at the frame beyond what the model sees.
        self.tracking_scale = tracking_scale if FLOW_HEAD in options.heads else 1
        self.multi_view_depth = multi_view_depth and FLOW_HEAD in options.heads
        self.device = model.device
        # The session owns autocast (aggregator in bf16/fp16 on GPU, heads always fp32).
        self.session = model.new_session(options)
        self.frame_index = 0
        # The session's first frame, for poses from matches, and the head's extrinsic of it.
        self._first: FirstFrame | None = None
        self._previous: PreviousFrame | None = None  # the last frame, its depth rescaled
        self._first_extrinsic = np.eye(4)
        self._head_correction = np.eye(3)  # the session's last PnP rotation from the head's
        self._image_step = 0.0  # the session's last step across the image (image widths)
        self._depth_tilt = 0.0  # the flow head's, read at each session's first frame
        self._recent: tuple[RecentFrame, ...] = ()  # the session's last frames, for the sweep

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | os.PathLike | None,
        preset: str = 'streamvggt-1b',
        device: str | torch.device = 'cpu',
        cache_dir: str | os.PathLike | None = None,
        **options,
    ) -> Reconstructor:
        """Load the model (see checkpoints.load_model) and wrap it; options go to __init__."""
        return cls(load_model(checkpoint, preset, device, cache_dir), **options)

    def reset(self) -> None:
        """Forget all frames: the next frame becomes the world origin."""
        self.session.reset()
        self.frame_index = 0

    def set_merging(self, merging: MergingConfig | Mapping[str, Any] | None) -> None:
        """Switch token merging from the next frame on, without a reset (see StreamSession)."""
        self.session.set_merging(merging)

    def preprocess(self, rgb: np.ndarray) -> Tensor:
        """HxWx3 uint8 -> the frame on the device at tracking_scale times the model's size (see
        `preprocess`); step_image shrinks it to the model's input."""
        return preprocess(rgb, self.image_width, self.device, self.tracking_scale)

    def step(self, rgb: np.ndarray, stamp: float | None = None) -> FrameResult:
        """Run one frame through the session and return its pose, depth and points."""
        start = time.perf_counter()
        image = self.preprocess(rgb)
        preprocessed = self._clock()
        result = self.step_image(image, stamp)
        result.timings['preprocess'] = preprocessed - start
        return result

    def step_image(self, image: Tensor, stamp: float | None = None) -> FrameResult:
        """Run one preprocessed frame (see preprocess) through the session. All or nothing: if
        it raises (in the model, in poses from matches, or with a non-finite pose), the session
        and the state poses from matches carry are as before the call."""
        start = time.perf_counter()
        model_input = image
        if self.tracking_scale > 1:
            size = (image.shape[-2] // self.tracking_scale, image.shape[-1] // self.tracking_scale)
            model_input = resized_image(image, size)
        matches_state = {name: getattr(self, name) for name in _MATCHES_STATE}
        try:
            with self.session.stepping(model_input) as out:
                inferred = self._clock()
                result = self._to_result(out, model_input, image, stamp)
                if not np.isfinite(result.world_from_camera).all():  # nothing to anchor
                    raise FloatingPointError('the frame got a non-finite camera pose')
        except BaseException:  # the frame never came: the model's and the matches' state as before
            for name, value in matches_state.items():
                setattr(self, name, value)
            raise
        result.timings.update(model=inferred - start, postprocess=time.perf_counter() - inferred)
        self.frame_index += 1
        return result

    def restart(
        self, images: Sequence[Tensor], stamps: Sequence[float | None]
    ) -> list[FrameResult]:
        """Start a new world at images[0] and warm-start it with the others (re-anchoring).

        The session's buffers are reused, so memory stays as it was; if a step raises, the
        session is left reset and the error propagates.
        """
        self.reset()
        try:
            return [
                self.step_image(image, stamp) for image, stamp in zip(images, stamps, strict=True)
            ]
        except Exception:
            self.reset()
            raise

    def _clock(self) -> float:
        # GPU work is asynchronous; without a sync the time would land in the wrong phase.
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _to_result(
        self, out: dict[str, Tensor], image: Tensor, tracked: Tensor, stamp: float | None
    ) -> FrameResult:
        """The session's outputs for the model's input `image` as a FrameResult; poses from
        matches track the frame as `tracked` shows it (see TrackingFrame)."""
        height, width = image.shape[-2:]
        pose_enc = out['pose_enc'].detach().float().reshape(9).cpu()
        extrinsic, K = pose_encoding_to_extri_intri(pose_enc.double(), (height, width))
        camera_from_world = to_homogeneous(extrinsic).numpy()

        def hw(name: str, *trailing: int) -> np.ndarray | None:
            if name not in out:
                return None
            return out[name].detach().float().reshape(height, width, *trailing).cpu().numpy()

        depth = hw('depth')
        colours = to_rgb8(image)
        if FLOW_HEAD in out:
            flow = out[FLOW_HEAD].detach().float().cpu().numpy()
            patch_size = self.model.config.patch_size
            tracked_rgb = colours if tracked is image else to_rgb8(tracked)  # once a frame
            frame = TrackingFrame.of(tracked_rgb, K.numpy(), flow, depth, patch_size)
            camera_from_world, tracked_depth = self._pose_from_matches(camera_from_world, frame)
            depth = frame.model_sized(tracked_depth)
        return FrameResult(
            frame_index=self.frame_index,
            stamp=stamp,
            world_from_camera=np.linalg.inv(camera_from_world),
            camera_from_world=camera_from_world,
            K=K.numpy(),
            depth=depth,
            confidence=hw('depth_conf'),
            colours=colours,
            world_points=hw('world_points', 3),
            world_points_conf=hw('world_points_conf'),
            pose_enc=pose_enc.numpy(),
        )

    def _pose_from_matches(
        self, extrinsic: np.ndarray, frame: TrackingFrame
    ) -> tuple[np.ndarray, np.ndarray]:
        """camera_from_first of this `frame`, from its matches to the first frame
        refined in the two images, those tracked from the previous frame and the session's
        tracks (pose_from_matches.solve_pose), and its depth, in the first frame's units where
        PnP gave the pose. The head's rotation is predicted through the correction PnP last made
        to it, so that a frame with too few matches for PnP goes on from the session's last PnP
        pose rather than jumping back to the head's; a frame's depth is levelled for the step
        its matches made across the image, or the session's last step where PnP did not give
        them, and straightened by the session's sure tracks where PnP gave the pose (and
        corrected in shape by the recent frames, with multi_view_depth)."""
        image, depth, flow, K = frame.image, frame.depth, frame.flow, frame.K
        if self.frame_index == 0:
            self._first, self._first_extrinsic = FirstFrame(image, depth), extrinsic
            tracks = Tracks.none().spawned(depth, np.eye(4), K)
            self._previous = PreviousFrame(image, depth, np.eye(4), tracks=tracks)
            self._head_correction = np.eye(3)
            self._image_step, self._depth_tilt = 0.0, float(self.model.flow_head.depth_tilt)
            self._recent = (RecentFrame(image, np.eye(4)),)
            return np.eye(4), depth
        head_pose = extrinsic @ np.linalg.inv(self._first_extrinsic)
        predicted = head_pose.copy()
        predicted[:3, :3] = self._head_correction @ head_pose[:3, :3]
        patch_size = self.model.config.patch_size
        pose, pnp_matches, tracks = solve_pose(
            predicted, flow, image, self._first, K, patch_size, self._previous
        )
        if pnp_matches is not None:
            step = image_step(self._previous.pose, *pnp_matches, K, depth.shape[1])
            self._image_step = self._image_step if step is None else step
        depth = level_depth(depth, self._image_step, self._depth_tilt, K)
        if pnp_matches is not None:
            depth = straightened_depth(depth, tracks, pose, K)
            self._head_correction = pose[:3, :3] @ head_pose[:3, :3].T
            depth = _scaled_to_matches(depth, pose, pnp_matches)
            if self.multi_view_depth:
                # The sweep's shape, the matches' scale: the sweep measures depth in units of the
                # recent poses' baselines, and a bias there, handed on to tracking, compounds
                # frame by frame (a validation orbit's path shrank by 30%).
                corrected = corrected_depth(image, depth, pose, K, self._recent)
                depth = _scaled_to_matches(corrected, pose, pnp_matches)
        self._recent = (*self._recent, RecentFrame(image, pose))[-RECENT_FRAMES:]
        self._previous = self._previous.followed_by(image, depth, pose, tracks, K)
        return pose, depth


def _scaled_to_matches(depth: np.ndarray, pose: np.ndarray, pnp_matches: tuple) -> np.ndarray:
    """`depth` put into the first frame's units by the frame's PnP matches
    (pose_from_matches.depth_scale); as it is where they are too few to say."""
    scale = depth_scale(pose, *pnp_matches, depth)
    return depth if scale is None else depth * np.float32(scale)
