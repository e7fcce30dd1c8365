"""Ray casting and shading: RGB and exact z-depth of a scene seen by a pinhole camera.

Rays are intersected analytically (planes, slabs, quadratics) for all pixels at once, so a
320x240 frame takes milliseconds. Pixel (u, v) sits at integer coordinates; camera poses are
world_from_camera in the optical frame (x right, y down, z forward).
"""

from __future__ import annotations

import numpy as np

from vggt_ros.synthetic.scene import Box, Material, Scene, Sphere

_HASH_PRIMES = np.array((73856093, 19349663, 83492791))


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
    light = scene.ambient + (1 - scene.ambient) * np.clip(cosine, 0, 1)
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
