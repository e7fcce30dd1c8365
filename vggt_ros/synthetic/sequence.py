"""A rendered camera sequence with exact ground truth, and the bag an RGB-D camera would record."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vggt_ros.evaluation.bag_io import BagWriter
from vggt_ros.model.geometry import extri_intri_to_pose_encoding
from vggt_ros.synthetic.render import render
from vggt_ros.synthetic.scene import Scene
from vggt_ros.synthetic.trajectories import pinhole, sample_path, scale_intrinsics
from vggt_ros.synthetic.variety import default_world, random_world

WORLD_FRAME = 'world'
CAMERA_FRAME = 'camera_optical_frame'
TOPICS = {
    'image': '/camera/image_raw',
    'info': '/camera/camera_info',
    'depth': '/camera/depth',
    'tf': '/tf',
}


@dataclass(frozen=True)
class SyntheticSequence:
    """A scene, a camera trajectory and its timing: everything needed to render frames and truth."""

    scene: Scene
    poses: np.ndarray  # [N, 4, 4] world_from_camera, optical axes
    K: np.ndarray  # intrinsics at (height, width)
    height: int
    width: int
    stamps: np.ndarray  # [N] int64 nanoseconds

    def __len__(self) -> int:
        return len(self.poses)

    def render(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """RGB and depth of frame `index` at the sequence's resolution."""
        return render(self.scene, self.poses[index], self.K, self.height, self.width)

    def model_frame(self, index: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """What a perfect model would output for frame `index` at input size (height, width).

        The pose encoding is camera-from-world with the first camera as the world (the model's
        world), and the depth is rendered at exactly that size with the intrinsics the model
        assumes for it. This is the ground-truth source of the test stand-in model.
        """
        K = scale_intrinsics(self.K, (self.height, self.width), (height, width))
        camera_from_first = np.linalg.inv(self.poses[index]) @ self.poses[0]
        pose_enc = extri_intri_to_pose_encoding(
            torch.from_numpy(camera_from_first[:3]), torch.from_numpy(K), (height, width)
        )
        _, depth = render(self.scene, self.poses[index], K, height, width)
        return pose_enc, torch.from_numpy(depth)


def make_sequence(
    kind: str = 'walk',
    frames: int = 120,
    width: int = 320,
    height: int = 240,
    fps: float = 15.0,
    horizontal_fov_deg: float = 70.0,
    start: float = 1_700_000_000.0,
    seed: int = 0,
    varied: bool = False,
) -> SyntheticSequence:
    """A sequence along a named trajectory; stamps start at `start` seconds.

    By default the scene is the default room and `seed` changes only its texture noise; with
    `varied` the seed chooses the whole world, room, objects, light and path (`random_world`).
    """
    world = random_world(seed) if varied else default_world(seed)
    stamps = np.round((start + np.arange(frames) / fps) * 1e9).astype(np.int64)
    return SyntheticSequence(
        world.scene,
        sample_path(world.paths, kind, frames),
        pinhole(width, height, horizontal_fov_deg),
        height,
        width,
        stamps,
    )


def frame_indices(sequence: SyntheticSequence, progress: bool) -> Iterable[int]:
    """Indices of the sequence's frames, with a progress bar while rendering if asked."""
    from tqdm import tqdm

    return tqdm(range(len(sequence)), desc='rendering', unit='frame', disable=not progress)


def write_camera_frame(bag: BagWriter, sequence: SyntheticSequence, index: int) -> None:
    """Render frame `index` and write its camera info, RGB image and depth at its stamp."""
    stamp = int(sequence.stamps[index])
    rgb, depth = sequence.render(index)
    bag.write(
        TOPICS['info'],
        stamp,
        bag.camera_info(stamp, CAMERA_FRAME, sequence.K, sequence.width, sequence.height),
    )
    bag.write(TOPICS['image'], stamp, bag.image(stamp, CAMERA_FRAME, rgb, 'rgb8'))
    bag.write(TOPICS['depth'], stamp, bag.image(stamp, CAMERA_FRAME, depth, '32FC1'))


def write_bag(
    sequence: SyntheticSequence, path: str | Path, storage: str = 'mcap', progress: bool = False
) -> Path:
    """Render every frame and write the topics an RGB-D camera with ground-truth TF would record."""
    with BagWriter(path, storage) as bag:
        for index in frame_indices(sequence, progress):
            stamp = int(sequence.stamps[index])
            bag.write(
                TOPICS['tf'], stamp, bag.tf(stamp, WORLD_FRAME, CAMERA_FRAME, sequence.poses[index])
            )
            write_camera_frame(bag, sequence, index)
    return Path(path)
