"""Robot scenes: the camera rides a tilted, offset mount on a base that drives on the floor.

On a robot the node joins the TF tree (DESIGN §4, REP-105): it looks up the mount base_link ->
camera_optical_frame and publishes odom -> base_link, or map -> odom when wheel odometry owns
odom -> base_link. A robot bag therefore holds the mount on /tf_static, ground truth only under
frames the node never publishes (world -> gt/base_link -> gt/camera_optical_frame), and on request
noisy wheel odometry. The mount is pitched, yawed and offset so that any assumption of a level
camera at the base's origin shows in the scores.

    vggt-synth out/robot --robot --trajectory walk --wheel-odometry --wheel-noise 0.02
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from vggt_ros.evaluation.bag_io import BagWriter
from vggt_ros.synthetic.scene import default_scene
from vggt_ros.synthetic.sequence import (
    CAMERA_FRAME,
    TOPICS,
    WORLD_FRAME,
    SyntheticSequence,
    frame_indices,
    write_camera_frame,
)
from vggt_ros.synthetic.trajectories import look_at, pinhole, sample_path

BASE_FRAME = 'base_link'
ODOM_FRAME = 'odom'
GT_BASE_FRAME = 'gt/base_link'
GT_CAMERA_FRAME = 'gt/camera_optical_frame'
TF_STATIC_TOPIC = '/tf_static'
ODOMETRY_PER_FRAME = 2  # wheel odometry samples per image interval, so a TF buffer interpolates


def planar_pose(x: float, y: float, heading: float) -> np.ndarray:
    """4x4 of a level pose on the floor (z = 0, roll = pitch = 0) at (x, y), turned by heading."""
    pose = np.eye(4)
    pose[:3, :3] = Rotation.from_euler('z', heading).as_matrix()
    pose[:2, 3] = x, y
    return pose


def camera_mount(offset: tuple[float, float, float], yaw: float, pitch: float) -> np.ndarray:
    """base_from_camera_optical of a camera at `offset` (REP-103 base axes: x forward, y left, z
    up) looking forward, turned `yaw` to the left and `pitch` down."""
    position = np.asarray(offset, float)
    direction = np.array((np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), -np.sin(pitch)))
    return look_at(position, position + direction)


DEFAULT_MOUNT = camera_mount((0.2, 0.05, 0.5), yaw=0.1, pitch=0.25)


# ----------------------------------------------------------------------------------------------
# Planar paths of the base, one per camera trajectory kind: world_from_base as a function of
# s in [0, 1], heading along the direction of travel, clear of the objects of the default room.


def _drive_walk(s: float) -> np.ndarray:
    """Down the room's length beside the middle objects, weaving gently; they are ahead-left."""
    weave = 2 * np.pi * s
    heading = np.arctan2(0.35 * 2 * np.pi * np.cos(weave), 5.0)  # of (dx/ds, dy/ds)
    return planar_pose(-2.8 + 5.0 * s, -1.3 + 0.35 * np.sin(weave), heading)


def _drive_orbit(s: float) -> np.ndarray:
    """Three quarters of a circle around the middle objects, facing the walls and corners."""
    angle = 1.5 * np.pi * s
    return planar_pose(2.2 * np.cos(angle), 2.2 * np.sin(angle), angle + np.pi / 2)


def _drive_rotate(s: float) -> np.ndarray:
    """Mostly rotation: a full turn on a circle of 0.25 m radius."""
    heading = 2 * np.pi * s
    return planar_pose(-1.8 + 0.25 * np.sin(heading), -0.25 * np.cos(heading), heading)


ROBOT_PATHS = {'walk': _drive_walk, 'orbit': _drive_orbit, 'rotate': _drive_rotate}


def base_trajectory(kind: str, frames: int, substeps: int = 1) -> np.ndarray:
    """world_from_base poses of a named path, evenly spaced in time (see `sample_path`)."""
    return sample_path(ROBOT_PATHS, kind, frames, substeps)


def planar_increments(poses: np.ndarray) -> np.ndarray:
    """(dx, dy, dyaw) [N - 1, 3] from each planar pose to the next, in the earlier one's frame."""
    steps = np.linalg.inv(poses[:-1]) @ poses[1:]
    return np.column_stack(
        (steps[:, 0, 3], steps[:, 1, 3], np.arctan2(steps[:, 1, 0], steps[:, 0, 0]))
    )


def wheel_odometry(base_poses: np.ndarray, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """odom_from_base [N, 4, 4] as wheel encoders integrate it, identity at the first pose.

    Each step's error is Gaussian with a variance proportional to the step's length (x, y) and
    turn (yaw), a random walk: the error's std after 1 m travelled, or 1 rad turned, is `noise`,
    whatever the sampling rate. With noise 0 it is the true motion relative to the first pose.
    """
    increments = planar_increments(base_poses)
    distance = np.hypot(increments[:, 0], increments[:, 1])
    std = noise * np.sqrt(np.column_stack((distance, distance, np.abs(increments[:, 2]))))
    noisy = increments + std * np.random.default_rng(seed).standard_normal(increments.shape)
    poses = [np.eye(4)]
    for dx, dy, dyaw in noisy:
        poses.append(poses[-1] @ planar_pose(dx, dy, dyaw))
    return np.stack(poses)


@dataclass(frozen=True)
class RobotSequence(SyntheticSequence):
    """A SyntheticSequence whose camera rides `mount` on a base driving on the floor.

    `poses` are the camera's (world_from_base @ mount), so whatever takes a SyntheticSequence
    (the stand-in model's `model_frame` included) takes this one unchanged.
    """

    base_poses: np.ndarray  # [N, 4, 4] world_from_base, REP-103 axes (x forward, y left, z up)
    mount: np.ndarray  # [4, 4] base_from_camera_optical
    odometry_stamps: np.ndarray  # [M] int64 ns, ODOMETRY_PER_FRAME per image interval
    odometry_poses: np.ndarray  # [M, 4, 4] odom_from_base as the (noisy) wheels report it

    @property
    def wheel_poses(self) -> np.ndarray:
        """odom_from_base [N, 4, 4] of the wheel odometry at the image stamps."""
        return self.odometry_poses[::ODOMETRY_PER_FRAME]


def make_robot_sequence(
    kind: str = 'walk',
    frames: int = 120,
    width: int = 320,
    height: int = 240,
    fps: float = 15.0,
    horizontal_fov_deg: float = 70.0,
    start: float = 1_700_000_000.0,
    seed: int = 0,
    wheel_noise: float = 0.0,
    mount: np.ndarray = DEFAULT_MOUNT,
) -> RobotSequence:
    """A robot driving a named path through the default scene; `seed` seeds textures and wheels."""
    odometry_base = base_trajectory(kind, frames, ODOMETRY_PER_FRAME)
    odometry_stamps = np.round(
        (start + np.arange(len(odometry_base)) / (fps * ODOMETRY_PER_FRAME)) * 1e9
    ).astype(np.int64)
    base_poses = odometry_base[::ODOMETRY_PER_FRAME]
    return RobotSequence(
        scene=default_scene(seed),
        poses=base_poses @ mount,
        K=pinhole(width, height, horizontal_fov_deg),
        height=height,
        width=width,
        stamps=odometry_stamps[::ODOMETRY_PER_FRAME],
        base_poses=base_poses,
        mount=np.asarray(mount, float),
        odometry_stamps=odometry_stamps,
        odometry_poses=wheel_odometry(odometry_base, wheel_noise, seed),
    )


def robot_bag_contents(wheel_odometry: bool = False) -> dict[str, list[tuple[str, str]]]:
    """The TF edges (parent, child) a robot bag holds, by topic."""
    moving = [(WORLD_FRAME, GT_BASE_FRAME)]
    if wheel_odometry:
        moving.append((ODOM_FRAME, BASE_FRAME))
    return {
        TF_STATIC_TOPIC: [(BASE_FRAME, CAMERA_FRAME), (GT_BASE_FRAME, GT_CAMERA_FRAME)],
        TOPICS['tf']: moving,
    }


def write_robot_bag(
    sequence: RobotSequence,
    path: str | Path,
    storage: str = 'mcap',
    wheel_odometry: bool = False,
    progress: bool = False,
) -> Path:
    """Render every frame and write what the robot's camera, TF and motion capture would record.

    /tf_static: the mount and its ground-truth twin, in one message at the first stamp (a static
    broadcaster latches its one last message). /tf: world -> gt/base_link at each image stamp and,
    with `wheel_odometry`, odom -> base_link at ODOMETRY_PER_FRAME times the image rate.
    """
    first = int(sequence.stamps[0])
    with BagWriter(path, storage) as bag:
        mounts = [(*edge, sequence.mount) for edge in robot_bag_contents()[TF_STATIC_TOPIC]]
        bag.write(TF_STATIC_TOPIC, first, bag.tf_tree(first, mounts))
        for index in frame_indices(sequence, progress):
            if wheel_odometry:
                _write_odometry_until(bag, sequence, index)
            stamp = int(sequence.stamps[index])
            truth = bag.tf(stamp, WORLD_FRAME, GT_BASE_FRAME, sequence.base_poses[index])
            bag.write(TOPICS['tf'], stamp, truth)
            write_camera_frame(bag, sequence, index)
    return Path(path)


def _write_odometry_until(bag: BagWriter, sequence: RobotSequence, index: int) -> None:
    """odom -> base_link at the odometry samples after frame index - 1, up to frame `index`."""
    last = ODOMETRY_PER_FRAME * index
    for sample in range(max(last - ODOMETRY_PER_FRAME + 1, 0), last + 1):
        stamp = int(sequence.odometry_stamps[sample])
        odometry = bag.tf(stamp, ODOM_FRAME, BASE_FRAME, sequence.odometry_poses[sample])
        bag.write(TOPICS['tf'], stamp, odometry)
