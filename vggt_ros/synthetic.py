"""Procedural scenes with exact ground truth, rendered by ray casting and written as bags.

Real weights cannot be judged here and real bags carry noisy ground truth, so the evaluation is
proven on scenes whose every pose and depth is known exactly: a textured room with boxes and
spheres, seen by a pinhole camera on a smooth trajectory. Rays are intersected analytically
(planes, slabs, quadratics) for all pixels at once, so a 320x240 frame takes milliseconds.

Conventions are the model's (DESIGN §4): world z up, camera poses are world_from_camera in the
optical frame (x right, y down, z forward), pixel (u, v) sits at integer coordinates and the
principal point is at exactly (W/2, H/2); depth is z-depth in metres.

    vggt-synth out/walk --trajectory walk --frames 120 --width 320 --height 240
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vggt_ros.evaluation.bag_io import STORAGES, BagWriter
from vggt_ros.model.geometry import extri_intri_to_pose_encoding

WORLD_FRAME = 'world'
CAMERA_FRAME = 'camera_optical_frame'
TOPICS = {
    'image': '/camera/image_raw',
    'info': '/camera/camera_info',
    'depth': '/camera/depth',
    'tf': '/tf',
}
_NOISE_TABLE_SIZE = 1 << 16
_HASH_PRIMES = np.array((73856093, 19349663, 83492791))
_LIGHT_AMBIENT = 0.35


@dataclass(frozen=True)
class Material:
    """A solid (3-D) texture: two colours mixed by a pattern, modulated by multi-octave value noise.

    Solid textures stick to the geometry, so every view of a surface agrees, and the noise gives
    the fine detail that feature matching needs at any distance.
    """

    base: tuple[float, float, float]
    accent: tuple[float, float, float]
    pattern: str = 'noise'  # 'noise', 'checker' or 'stripes'
    scale: float = 0.5  # metres per checker tile or stripe period
    detail: float = 4.0  # frequency of the coarsest noise octave, cycles per metre


@dataclass(frozen=True)
class Box:
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    material: Material


@dataclass(frozen=True)
class Sphere:
    centre: tuple[float, float, float]
    radius: float
    material: Material


@dataclass(frozen=True)
class Scene:
    """An axis-aligned room seen from inside (six surfaces, six materials), boxes and spheres."""

    room_lo: tuple[float, float, float]
    room_hi: tuple[float, float, float]
    # Materials of the room's surfaces, ordered -x, +x, -y, +y, floor (-z), ceiling (+z).
    room_materials: tuple[Material, ...]
    boxes: tuple[Box, ...] = ()
    spheres: tuple[Sphere, ...] = ()
    light: tuple[float, float, float] = (0.5, -0.5, 2.8)
    seed: int = 0
    noise: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        table = np.random.default_rng(self.seed).random(_NOISE_TABLE_SIZE, np.float32)
        object.__setattr__(self, 'noise', table)

    @property
    def materials(self) -> tuple[Material, ...]:
        """Every material, indexed by the material ids that ray casting returns."""
        return (
            *self.room_materials,
            *(b.material for b in self.boxes),
            *(s.material for s in self.spheres),
        )


def default_scene(seed: int = 0) -> Scene:
    """An 8 x 6 x 3 m room: two objects in the middle, four near the walls, clear paths between."""
    wall = Material((0.75, 0.70, 0.62), (0.55, 0.45, 0.40), 'stripes', 0.7, 3.0)
    return Scene(
        room_lo=(-4.0, -3.0, 0.0),
        room_hi=(4.0, 3.0, 3.0),
        room_materials=(
            wall,
            Material((0.45, 0.60, 0.75), (0.30, 0.35, 0.55), 'checker', 0.75, 3.0),
            Material((0.70, 0.75, 0.55), (0.40, 0.55, 0.35), 'stripes', 0.4, 4.0),
            wall,
            Material((0.60, 0.50, 0.40), (0.25, 0.20, 0.18), 'checker', 0.5, 5.0),
            Material((0.85, 0.85, 0.82), (0.65, 0.65, 0.70), 'noise', 1.0, 2.0),
        ),
        boxes=(
            Box(
                (-0.7, -0.6, 0.0),
                (-0.1, 0.1, 0.7),
                Material((0.80, 0.30, 0.20), (0.95, 0.75, 0.30), 'checker', 0.15),
            ),
            Box(
                (3.0, -2.6, 0.0),
                (3.8, -1.6, 1.2),
                Material((0.20, 0.45, 0.80), (0.90, 0.90, 0.90), 'stripes', 0.2),
            ),
            Box(
                (-3.8, 1.5, 0.0),
                (-3.0, 2.7, 0.9),
                Material((0.30, 0.65, 0.30), (0.15, 0.30, 0.15), 'noise', 1.0, 6.0),
            ),
        ),
        spheres=(
            Sphere(
                (0.4, 0.3, 0.45),
                0.45,
                Material((0.90, 0.85, 0.20), (0.60, 0.20, 0.50), 'stripes', 0.12),
            ),
            Sphere(
                (3.2, 2.2, 0.6),
                0.6,
                Material((0.60, 0.30, 0.70), (0.95, 0.95, 0.95), 'checker', 0.2),
            ),
            Sphere(
                (-3.3, -2.2, 1.5),
                0.4,
                Material((0.20, 0.70, 0.70), (0.10, 0.20, 0.30), 'noise', 1.0, 8.0),
            ),
        ),
        seed=seed,
    )


# ----------------------------------------------------------------------------------------------
# Ray casting: distances for all rays first, then normals and materials only at the nearest hits.
# Arrays are laid out [3, N] (one row per axis): numpy reduces across rows far faster than along
# a length-3 last axis. Ray directions have unit z in the camera frame, so the distance t along
# a ray is its z-depth.

_EPS = 1e-9


def _column(values: tuple[float, ...]) -> np.ndarray:
    return np.asarray(values, float)[:, None]


def _room_distance(scene: Scene, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """From inside the room every ray leaves through the nearest of the three walls it heads to."""
    walls = np.where(dirs > 0, _column(scene.room_hi), _column(scene.room_lo))
    with np.errstate(divide='ignore', invalid='ignore'):
        exits = np.where(dirs == 0, np.inf, (walls - origin) / dirs)
    return np.minimum(np.minimum(exits[0], exits[1]), exits[2])


def _box_distance(box: Box, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Slab method: the ray is inside the box between the latest entry and the earliest exit."""
    with np.errstate(divide='ignore', invalid='ignore'):
        t_lo = (_column(box.lo) - origin) / dirs
        t_hi = (_column(box.hi) - origin) / dirs
    # 0/0 (a ray inside a face's plane) is NaN: such a ray is within that slab, never bounded by it.
    inside = np.isnan(t_lo)
    near = np.where(inside, -np.inf, np.minimum(t_lo, t_hi))
    far = np.where(inside, np.inf, np.maximum(t_lo, t_hi))
    t_in = np.maximum(np.maximum(near[0], near[1]), near[2])
    t_out = np.minimum(np.minimum(far[0], far[1]), far[2])
    return np.where((t_in <= t_out) & (t_in > _EPS), t_in, np.inf)


def _sphere_distance(sphere: Sphere, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Nearer root of |o + t d - c|^2 = r^2 (the camera is always outside the sphere)."""
    offset = origin - _column(sphere.centre)
    a = (dirs * dirs).sum(0)
    b = (dirs * offset).sum(0)
    disc = b * b - a * ((offset * offset).sum() - sphere.radius**2)
    with np.errstate(invalid='ignore'):
        t = (-b - np.sqrt(disc)) / a
    return np.where((disc >= 0) & (t > _EPS), t, np.inf)


def _box_face(
    lo: tuple, hi: tuple, points: np.ndarray, outward: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Normal [3, N] of the face each point is on, and its index (2 axis, +1 on the high side)."""
    gaps = np.concatenate((np.abs(points - _column(lo)), np.abs(points - _column(hi))))
    face = gaps.argmin(axis=0)
    axis, high = face % 3, face >= 3
    normals = np.zeros_like(points)
    normals[axis, np.arange(points.shape[1])] = np.where(high == outward, 1.0, -1.0)
    return normals, 2 * axis + high


def cast_rays(
    scene: Scene, origin: np.ndarray, dirs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Nearest hit of rays from origin [3, 1] along dirs [3, N]: t, point, normal, material id."""
    distances = np.stack(
        (
            _room_distance(scene, origin, dirs),
            *(_box_distance(box, origin, dirs) for box in scene.boxes),
            *(_sphere_distance(sphere, origin, dirs) for sphere in scene.spheres),
        )
    )
    nearest = distances.argmin(axis=0)
    t = np.take_along_axis(distances, nearest[None], 0)[0]
    points = origin + t * dirs
    normals = np.zeros_like(dirs)
    materials = np.empty(len(t), np.int64)
    # The room's six surfaces face inwards and have a material each (ids 0-5); objects have one.
    hit = nearest == 0
    normals[:, hit], materials[hit] = _box_face(scene.room_lo, scene.room_hi, points[:, hit], False)
    n_room = len(scene.room_materials)
    for i, box in enumerate(scene.boxes, start=1):
        hit = nearest == i
        normals[:, hit] = _box_face(box.lo, box.hi, points[:, hit], True)[0]
        materials[hit] = n_room + i - 1
    for i, sphere in enumerate(scene.spheres, start=1 + len(scene.boxes)):
        hit = nearest == i
        normals[:, hit] = (points[:, hit] - _column(sphere.centre)) / sphere.radius
        materials[hit] = n_room + i - 1
    return t, points, normals, materials


# ----------------------------------------------------------------------------------------------
# Shading: solid textures and one diffuse point light (view-independent: views agree on colour).


def value_noise(points: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Smooth noise in [0, 1] at points [3, N]: random lattice values, smoothstep-interpolated.

    Hashes and weights are separable per axis, so each is computed once per lattice neighbour
    and only combined over the eight cell corners (the noise dominates the rendering time).
    """
    cell = np.floor(points)
    frac = (points - cell).astype(np.float32)
    weight = frac * frac * (3 - 2 * frac)
    hashed = cell.astype(np.int64) * _HASH_PRIMES[:, None]  # spatial hash of the lattice, per axis
    lattice = [(hashed[k], hashed[k] + _HASH_PRIMES[k]) for k in range(3)]
    weights = [(1 - weight[k], weight[k]) for k in range(3)]
    total = np.zeros(points.shape[1], np.float32)
    for i, j, k in np.ndindex(2, 2, 2):
        index = (lattice[0][i] ^ lattice[1][j] ^ lattice[2][k]) & (len(table) - 1)
        total += weights[0][i] * weights[1][j] * weights[2][k] * table[index]
    return total


def fractal_noise(points: np.ndarray, table: np.ndarray, octaves: int = 4) -> np.ndarray:
    """Octaves of value noise, each twice the frequency and half the weight of the last."""
    total = sum(0.5**k * value_noise(points * 2**k + 17.0 * k, table) for k in range(octaves))
    return total / sum(0.5**k for k in range(octaves))


def _pattern(material: Material, points: np.ndarray) -> np.ndarray:
    if material.pattern == 'checker':
        # The quarter-cell offset keeps axis-aligned faces at tile boundaries off the floor() jump.
        cells = np.floor(points / material.scale + 0.25).astype(np.int64)
        return ((cells[0] + cells[1] + cells[2]) % 2).astype(np.float32)
    if material.pattern == 'stripes':
        phase = 2 * np.pi * (points[0] + 0.6 * points[1] + 0.8 * points[2]) / material.scale
        return 0.5 + 0.5 * np.sin(phase)
    return np.zeros(points.shape[1])


def shade(
    scene: Scene, points: np.ndarray, normals: np.ndarray, material_ids: np.ndarray
) -> np.ndarray:
    """RGB [3, N] in [0, 1] of surface points [3, N] with their normals and material ids."""
    albedo = np.zeros_like(points)
    for index, material in enumerate(scene.materials):
        mask = material_ids == index
        if not mask.any():
            continue
        p = points[:, mask]
        mix = _pattern(material, p)
        colour = (1 - mix) * _column(material.base) + mix * _column(material.accent)
        albedo[:, mask] = colour * (0.5 + 0.7 * fractal_noise(p * material.detail, scene.noise))
    to_light = _column(scene.light) - points
    cosine = (normals * to_light).sum(0) / np.sqrt((to_light * to_light).sum(0))
    light = _LIGHT_AMBIENT + (1 - _LIGHT_AMBIENT) * np.clip(cosine, 0, 1)
    return np.clip(albedo * light, 0, 1)


def render(
    scene: Scene, world_from_camera: np.ndarray, K: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """(HxWx3 uint8 RGB, HxW float32 z-depth in metres) of the scene seen by a pinhole camera."""
    v, u = np.mgrid[0:height, 0:width].reshape(2, -1).astype(float)
    rays = np.stack(((u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)))
    origin = world_from_camera[:3, 3:]
    depth, points, normals, materials = cast_rays(scene, origin, world_from_camera[:3, :3] @ rays)
    colours = shade(scene, points, normals, materials)
    rgb = np.round(colours.T * 255).astype(np.uint8).reshape(height, width, 3)
    return rgb, depth.astype(np.float32).reshape(height, width)


# ----------------------------------------------------------------------------------------------
# Trajectories: smooth functions of s in [0, 1] giving (camera position, point looked at).


def look_at(position: np.ndarray, target: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """world_from_camera (optical axes) of a camera at `position` looking at `target`; z up."""
    forward = target - position
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, (0.0, 0.0, 1.0))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c, s = np.cos(roll), np.sin(roll)
    right, down = c * right + s * down, c * down - s * right
    pose = np.eye(4)
    pose[:3, :3] = np.stack((right, down, forward), axis=1)
    pose[:3, 3] = position
    return pose


def _walk(s: float) -> np.ndarray:
    """Forward along the room's length, swaying sideways and bobbing like a hand-held camera."""
    position = np.array(
        (-2.8 + 5.3 * s, 0.6 * np.sin(2 * np.pi * s), 1.45 + 0.05 * np.sin(6 * np.pi * s))
    )
    target = position + (
        1.0,
        0.35 * np.sin(2 * np.pi * s + 1.0),
        -0.25 + 0.1 * np.cos(2 * np.pi * s),
    )
    return look_at(position, target, roll=0.04 * np.sin(4 * np.pi * s))


def _orbit(s: float) -> np.ndarray:
    """Three quarters of a circle around the objects in the middle, always looking at them."""
    angle = 1.5 * np.pi * s
    position = np.array(
        (2.1 * np.cos(angle), 2.1 * np.sin(angle), 1.6 + 0.2 * np.sin(2 * np.pi * s))
    )
    return look_at(position, np.array((0.0, 0.0, 0.4)))


def _rotate(s: float) -> np.ndarray:
    """Mostly rotation: a full turn of yaw with nodding pitch while drifting on a small circle."""
    position = np.array((-1.8 + 0.25 * np.cos(2 * np.pi * s), 0.25 * np.sin(2 * np.pi * s), 1.4))
    yaw = 2 * np.pi * s
    pitch = 0.25 * np.sin(4 * np.pi * s)
    heading = np.array((np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.sin(pitch)))
    return look_at(position, position + heading, roll=0.1 * np.sin(2 * np.pi * s))


TRAJECTORIES: dict[str, Callable[[float], np.ndarray]] = {
    'walk': _walk,
    'orbit': _orbit,
    'rotate': _rotate,
}


def trajectory(kind: str, frames: int) -> np.ndarray:
    """world_from_camera poses [frames, 4, 4] of a named trajectory, evenly spaced in time."""
    if kind not in TRAJECTORIES:
        raise ValueError(f'unknown trajectory {kind!r}; choose one of {", ".join(TRAJECTORIES)}')
    if frames < 1:
        raise ValueError(f'need at least one frame, got {frames}')
    return np.stack([TRAJECTORIES[kind](s) for s in np.linspace(0.0, 1.0, frames)])


def pinhole(width: int, height: int, horizontal_fov_deg: float) -> np.ndarray:
    """Intrinsics with square pixels and the principal point at (W/2, H/2), as the model assumes."""
    focal = (width / 2) / np.tan(np.radians(horizontal_fov_deg) / 2)
    return np.array(((focal, 0.0, width / 2), (0.0, focal, height / 2), (0.0, 0.0, 1.0)))


def scale_intrinsics(
    K: np.ndarray, size_hw: tuple[int, int], new_size_hw: tuple[int, int]
) -> np.ndarray:
    """Intrinsics after resizing an image from size_hw to new_size_hw (principal point centred)."""
    (height, width), (new_height, new_width) = size_hw, new_size_hw
    scaled = np.asarray(K, float).copy()
    scaled[0, 0] *= new_width / width
    scaled[1, 1] *= new_height / height
    scaled[:2, 2] = new_width / 2, new_height / 2
    return scaled


# ----------------------------------------------------------------------------------------------


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
) -> SyntheticSequence:
    """A sequence of the default scene along a named trajectory; stamps start at `start` seconds."""
    stamps = np.round((start + np.arange(frames) / fps) * 1e9).astype(np.int64)
    return SyntheticSequence(
        default_scene(seed),
        trajectory(kind, frames),
        pinhole(width, height, horizontal_fov_deg),
        height,
        width,
        stamps,
    )


def write_bag(
    sequence: SyntheticSequence, path: str | Path, storage: str = 'mcap', progress: bool = False
) -> Path:
    """Render every frame and write the topics an RGB-D camera with ground-truth TF would record."""
    from tqdm import tqdm

    with BagWriter(path, storage) as bag:
        for index in tqdm(
            range(len(sequence)), desc='rendering', unit='frame', disable=not progress
        ):
            stamp = int(sequence.stamps[index])
            rgb, depth = sequence.render(index)
            bag.write(
                TOPICS['tf'], stamp, bag.tf(stamp, WORLD_FRAME, CAMERA_FRAME, sequence.poses[index])
            )
            bag.write(
                TOPICS['info'],
                stamp,
                bag.camera_info(stamp, CAMERA_FRAME, sequence.K, sequence.width, sequence.height),
            )
            bag.write(TOPICS['image'], stamp, bag.image(stamp, CAMERA_FRAME, rgb, 'rgb8'))
            bag.write(TOPICS['depth'], stamp, bag.image(stamp, CAMERA_FRAME, depth, '32FC1'))
    return Path(path)


def main(argv: list[str] | None = None) -> None:
    """Console entry point `vggt-synth`."""
    parser = argparse.ArgumentParser(prog='vggt-synth', description=__doc__.split('\n\n')[0])
    parser.add_argument(
        'output', type=Path, help='bag to create (a folder for rosbag2, a .bag file for rosbag1)'
    )
    parser.add_argument('--trajectory', choices=sorted(TRAJECTORIES), default='walk')
    parser.add_argument('--frames', type=int, default=120)
    parser.add_argument('--width', type=int, default=320)
    parser.add_argument('--height', type=int, default=240)
    parser.add_argument('--fps', type=float, default=15.0)
    parser.add_argument('--fov', type=float, default=70.0, help='horizontal field of view, degrees')
    parser.add_argument('--storage', choices=STORAGES, default='mcap')
    parser.add_argument('--seed', type=int, default=0, help='seed of the texture noise')
    args = parser.parse_args(argv)
    sequence = make_sequence(
        args.trajectory, args.frames, args.width, args.height, args.fps, args.fov, seed=args.seed
    )
    start = time.perf_counter()
    path = write_bag(sequence, args.output, args.storage, progress=True)
    print(
        f'wrote {len(sequence)} frames ({args.width}x{args.height}, {args.trajectory}) to {path} '
        f'in {time.perf_counter() - start:.1f} s; topics: {", ".join(TOPICS.values())}'
    )


if __name__ == '__main__':
    main()
