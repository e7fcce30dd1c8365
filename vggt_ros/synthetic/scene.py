"""The procedural world: an axis-aligned textured room with boxes and spheres (world z up).

Materials are solid textures, so every view of a surface agrees on its colour.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_NOISE_TABLE_SIZE = 1 << 16


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
    ambient: float = 0.35  # share of the light that reaches surfaces facing away from the lamp
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


def object_distance(shape: Box | Sphere, points: np.ndarray) -> np.ndarray:
    """Distance [N] from points [N, 3] to the surface of a box or sphere (<= 0 inside it)."""
    if isinstance(shape, Sphere):
        return np.linalg.norm(points - shape.centre, axis=1) - shape.radius
    outside = np.maximum(np.maximum(np.subtract(shape.lo, points), points - shape.hi), 0.0)
    return np.linalg.norm(outside, axis=1)


def clearance(scene: Scene, points: np.ndarray) -> np.ndarray:
    """Distance [N] from points [N, 3] inside the room to the nearest wall, floor, ceiling or
    object: how close a camera there comes to running into something."""
    points = np.asarray(points, float)
    walls = np.minimum(points - scene.room_lo, np.subtract(scene.room_hi, points)).min(axis=1)
    objects = [object_distance(shape, points) for shape in (*scene.boxes, *scene.spheres)]
    return np.min([walls, *objects], axis=0)


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
