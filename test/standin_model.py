"""A stand-in for StreamVGGT with known outputs, in the model's raw conventions.

Random weights cannot show that the conventions downstream are right (pose inversion,
TF direction, depth units, point clouds, world axes). This stand-in returns, frame by
frame, a pose encoding (camera-from-world, OpenCV axes) and a z-depth map given by the
test, exactly as the real model would report them, so the node and the evaluator can be
checked against what those conventions imply.
"""

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from vggt_ros.model.geometry import depth_to_world_points, pose_encoding_to_extri_intri

# frame index -> (pose_enc [9], depth [H, W]) for a model input of that size
FrameSource = Callable[[int, int, int], tuple[torch.Tensor, torch.Tensor]]


class StandInSession:
    def __init__(self, source: FrameSource, merging=None) -> None:
        self.source = source
        self.frames_seen = 0
        self.merging = merging  # recorded only: the stand-in's outputs do not depend on it

    def set_merging(self, merging) -> None:
        self.merging = merging

    def reset(self) -> None:
        self.frames_seen = 0

    def step(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        with self.stepping(image) as out:
            return out

    @contextlib.contextmanager
    def stepping(self, image: torch.Tensor) -> Iterator[dict[str, torch.Tensor]]:
        """As StreamSession.stepping: the frame counts once the caller's block finishes."""
        height, width = image.shape[-2:]
        pose_enc, depth = self.source(self.frames_seen, height, width)
        pose_enc = pose_enc.to(torch.float32)
        depth = depth.to(torch.float32)
        extrinsic, intrinsic = pose_encoding_to_extri_intri(pose_enc.double(), (height, width))
        points = depth_to_world_points(depth.double(), extrinsic, intrinsic).float()
        confidence = torch.full_like(depth, 10.0)
        yield {
            'pose_enc': pose_enc,
            'depth': depth,
            'depth_conf': confidence,
            'world_points': points,
            'world_points_conf': confidence.clone(),
        }
        self.frames_seen += 1


class StandInModel(torch.nn.Module):
    """Drop-in for StreamVGGT where only sessions are used (Reconstructor, node, evaluator)."""

    def __init__(self, source: FrameSource) -> None:
        super().__init__()
        self.source = source
        self.anchor = torch.nn.Parameter(torch.zeros(()), requires_grad=False)  # marks the device

    @property
    def device(self) -> torch.device:
        return self.anchor.device

    def new_session(self, options=None, **fields) -> StandInSession:
        return StandInSession(self.source, fields.get('merging', options and options.merging))


def indexed_image(index: int, height: int, width: int) -> np.ndarray:
    """An HxWx3 uint8 frame that says which one it is: its index in the first pixel (r + 256 g)."""
    image = np.full((height, width, 3), 128, np.uint8)
    image[0, 0] = index % 256, index // 256, 0
    return image


def image_index(image: torch.Tensor) -> int:
    """The frame index indexed_image() wrote, read back from the model's input in [0, 1]."""
    red, green = (image[:2, 0, 0] * 255).round().int().tolist()
    return red + 256 * green


class SessionScaledStandIn(torch.nn.Module):
    """A stand-in whose every session, as StreamVGGT's, has its own world and scale.

    Frames are identified by their image (indexed_image), so a session warm-started with frames it
    has not seen in that order still reports each one's truth: camera-from-anchor, the anchor
    being the session's first frame, and depth, both in the session's own random scale.
    `fail_on_repeat`: frame indices whose second step raises (a warm-start that fails).
    """

    def __init__(self, poses: np.ndarray, depth: Callable[[int, int, int], np.ndarray], seed=0):
        super().__init__()
        self.poses = poses  # [N, 4, 4] world_from_camera, the truth
        self.depth = depth  # (index, height, width) -> true z-depth
        self.rng = np.random.default_rng(seed)
        self.scales: list[float] = []  # of every session, in the order they started
        self.fail_on_repeat: set[int] = set()
        self.stepped: set[int] = set()
        self.anchor = torch.nn.Parameter(torch.zeros(()), requires_grad=False)

    @property
    def device(self) -> torch.device:
        return self.anchor.device

    def new_session(self, options=None, **fields) -> '_ScaledSession':
        return _ScaledSession(self)

    def start_world(self) -> float:
        self.scales.append(float(self.rng.uniform(0.2, 5.0)))
        return self.scales[-1]


class _ScaledSession:
    FOV = 1.0  # radians, both axes

    def __init__(self, model: SessionScaledStandIn) -> None:
        self.model = model
        self.reset()

    def set_merging(self, merging) -> None:
        pass

    def reset(self) -> None:
        self.anchor_index = None
        self.scale = self.model.start_world()

    @contextlib.contextmanager
    def stepping(self, image: torch.Tensor) -> Iterator[dict[str, torch.Tensor]]:
        """As StreamSession.stepping; frames are known by their image, so nothing to undo."""
        yield self.step(image)

    def step(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        model, index = self.model, image_index(image)
        if index in model.stepped and index in model.fail_on_repeat:
            raise RuntimeError(f'injected failure on frame {index}')
        model.stepped.add(index)
        if self.anchor_index is None:
            self.anchor_index = index
        camera_from_anchor = np.linalg.inv(model.poses[index]) @ model.poses[self.anchor_index]
        camera_from_anchor[:3, 3] *= self.scale
        height, width = image.shape[-2:]
        fov = torch.tensor([self.FOV, self.FOV], dtype=torch.float64)
        translation = torch.from_numpy(camera_from_anchor[:3, 3])
        quaternion = Rotation.from_matrix(camera_from_anchor[:3, :3]).as_quat()
        pose_enc = torch.cat([translation, torch.from_numpy(quaternion), fov]).float()
        depth = torch.from_numpy(self.scale * model.depth(index, height, width)).float()
        return {'pose_enc': pose_enc, 'depth': depth, 'depth_conf': torch.full_like(depth, 10.0)}
