"""Procedurally varied worlds: the seed chooses the room, objects, materials, light and paths.

A model trained on one room learns that room. Here every seed draws a room of its own size and
shape (an L cut out of a corner, pillars), 2-10 objects of varied kinds, sizes and places, a
material per surface, a lamp and an ambient level, and walk, orbit and rotate paths fitted to
that room. The paths are drawn first, inside the room's free rectangle, and objects are then
placed only where they keep clear of every path, so each trajectory kind works in every world.

Seeds are split once: train on TRAIN_SEEDS, evaluate on HELD_OUT_SEEDS. Every parameter is a
continuous draw from the seed's own random stream, so a held-out world's geometry shares nothing
with any training world's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from vggt_ros.synthetic.scene import Box, Material, Scene, Sphere, default_scene, object_distance
from vggt_ros.synthetic.trajectories import TRAJECTORIES, Orbit, Path, Rotate, Walk

TRAIN_SEEDS = range(0, 1_000_000)
HELD_OUT_SEEDS = range(1_000_000, 1_100_000)

CAMERA_CLEARANCE = 0.3  # metres every camera keeps from every wall and object
_WALL_MARGIN = 0.6  # paths keep this far inside the room's free rectangle
_OBJECT_MARGIN = 0.5  # objects keep this far from the paths' sampled positions
_FOOTPRINT_GAP = 0.1  # objects keep this far apart on the floor
_PATH_SAMPLES = 200  # positions per path that objects are checked against
_PLACEMENT_TRIES = 40  # random spots tried per object before it is left out
_PATTERNS = ('noise', 'checker', 'stripes')
# Size ranges (width, depth, height in metres) of the box-shaped furniture.
_BOX_KINDS = {
    'table': ((0.6, 0.5, 0.65), (1.6, 1.0, 0.8)),
    'cabinet': ((0.4, 0.3, 1.2), (1.2, 0.6, 2.0)),
    'crate': ((0.3, 0.3, 0.3), (0.7, 0.7, 0.7)),
}

Shape = Box | Sphere


@dataclass(frozen=True)
class World:
    """A scene, and camera paths by trajectory kind that keep clear of its walls and objects."""

    scene: Scene
    paths: Mapping[str, Path]


def default_world(seed: int = 0) -> World:
    """The default room and its fixed trajectories; `seed` changes only the texture noise."""
    return World(default_scene(seed), TRAJECTORIES)


def random_world(seed: int) -> World:
    """The world of a seed: room, structure, light, materials, paths, then objects clear of them."""
    rng = np.random.default_rng((seed, 1))  # independent of the noise table default_rng(seed)
    room_hi = np.array((rng.uniform(2.5, 5.0), rng.uniform(2.0, 4.0), rng.uniform(2.4, 4.0)))
    room_lo = np.array((-room_hi[0], -room_hi[1], 0.0))
    corner, free_lo, free_hi = _corner_cut(rng, room_lo, room_hi)
    paths = _paths(rng, free_lo, free_hi, room_hi[2])
    keep_clear = np.concatenate(
        [
            [path.position(s) for s in np.linspace(0.0, 1.0, _PATH_SAMPLES)]
            for path in paths.values()
        ]
    )
    placed = _place_objects(rng, room_lo, room_hi, corner, keep_clear)
    light = (*rng.uniform(free_lo, free_hi), room_hi[2] - rng.uniform(0.2, 0.6))
    scene = Scene(
        room_lo=tuple(map(float, room_lo)),
        room_hi=tuple(map(float, room_hi)),
        room_materials=tuple(_material(rng, 0.3, 1.0) for _ in range(6)),
        boxes=tuple(shape for shape in placed if isinstance(shape, Box)),
        spheres=tuple(shape for shape in placed if isinstance(shape, Sphere)),
        light=tuple(map(float, light)),
        seed=seed,
        ambient=float(rng.uniform(0.2, 0.5)),
    )
    return World(scene, paths)


def random_scene(seed: int) -> Scene:
    """The scene of `random_world(seed)`."""
    return random_world(seed).scene


def _material(rng: np.random.Generator, smallest: float, largest: float) -> Material:
    """Random colours and pattern; tiles or stripes between `smallest` and `largest` metres."""
    base, accent = (tuple(map(float, rng.uniform(0.1, 0.95, 3))) for _ in range(2))
    pattern = _PATTERNS[rng.integers(len(_PATTERNS))]
    return Material(
        base, accent, pattern, float(rng.uniform(smallest, largest)), float(rng.uniform(2.0, 8.0))
    )


def _corner_cut(
    rng: np.random.Generator, room_lo: np.ndarray, room_hi: np.ndarray
) -> tuple[list[Box], np.ndarray, np.ndarray]:
    """Half the rooms are L-shaped: a full-height block fills a corner at one end of the room.

    Returns the block (if any) and the free rectangle (x, y) beside it, where the paths run.
    """
    free_lo, free_hi = room_lo[:2].copy(), room_hi[:2].copy()
    if rng.random() < 0.5:
        return [], free_lo, free_hi
    size = room_hi - room_lo
    along = int(size[1] > size[0])  # the cut shortens the room's length, never its width
    across = 1 - along
    depth = rng.uniform(1.0, 0.3 * size[along])
    width = rng.uniform(0.35, 0.6) * size[across]
    lo, hi = room_lo.copy(), room_hi.copy()
    if rng.random() < 0.5:
        hi[along] = lo[along] + depth
        free_lo[along] = hi[along]
    else:
        lo[along] = hi[along] - depth
        free_hi[along] = lo[along]
    if rng.random() < 0.5:
        hi[across] = lo[across] + width
    else:
        lo[across] = hi[across] - width
    block = Box(tuple(map(float, lo)), tuple(map(float, hi)), _material(rng, 0.3, 1.0))
    return [block], free_lo, free_hi


def _paths(
    rng: np.random.Generator, free_lo: np.ndarray, free_hi: np.ndarray, ceiling: float
) -> dict[str, Path]:
    """Walk, orbit and rotate inside the free rectangle shrunk by the wall margin, at heights
    well below the ceiling: clear of the walls by construction."""
    lo, hi = free_lo + _WALL_MARGIN, free_hi - _WALL_MARGIN
    top = ceiling - 0.7  # the orbit bobs 0.2 m and the walk 0.05 m above their heights
    return {
        'walk': _walk(rng, lo, hi, top),
        'orbit': _orbit(rng, lo, hi, top),
        'rotate': _rotate(rng, lo, hi, top),
    }


def _walk(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, top: float) -> Walk:
    """Along the longer side of the rectangle, either way, swaying within its width."""
    size = hi - lo
    along = int(size[1] > size[0])
    across = 1 - along
    length = rng.uniform(0.55, 0.85) * size[along]
    sway = rng.uniform(0.15, min(0.6, 0.4 * size[across]))
    forwards = rng.random() < 0.5
    start = np.empty(2)
    start[across] = (lo[across] + hi[across]) / 2 + rng.uniform(-1, 1) * (size[across] / 2 - sway)
    from_end = rng.uniform(0, size[along] - length)
    start[along] = lo[along] + from_end if forwards else hi[along] - from_end
    return Walk(
        start=tuple(map(float, start)),
        heading=along * np.pi / 2 + (0.0 if forwards else np.pi),
        length=float(length),
        sway=float(sway),
        sway_phase=float(rng.uniform(0, 2 * np.pi)),
        height=float(rng.uniform(1.2, min(1.7, top))),
        look_sway=float(rng.uniform(0.1, 0.5)),
        look_down=float(rng.uniform(0.1, 0.4)),
    )


def _orbit(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, top: float) -> Orbit:
    """Around a centre near the middle of the rectangle, on an ellipse that fits inside it."""
    half = (hi - lo) / 2
    offset = rng.uniform(-0.15, 0.15, 2) * half
    radii = (half - np.abs(offset)) * rng.uniform(0.75, 1.0, 2)
    return Orbit(
        centre=tuple(map(float, (lo + hi) / 2 + offset)),
        radii=tuple(map(float, radii)),
        start_angle=float(rng.uniform(0, 2 * np.pi)),
        sweep=float(rng.choice((-1.0, 1.0)) * rng.uniform(1.2, 1.8) * np.pi),
        height=float(rng.uniform(1.3, min(2.0, top))),
        target_height=float(rng.uniform(0.3, 0.8)),
    )


def _rotate(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, top: float) -> Rotate:
    """A turn on the spot, anywhere in the rectangle."""
    drift = rng.uniform(0.1, 0.3)
    return Rotate(
        spot=tuple(map(float, rng.uniform(lo + drift, hi - drift))),
        drift=float(drift),
        height=float(rng.uniform(1.2, min(1.7, top))),
        start_yaw=float(rng.uniform(0, 2 * np.pi)),
        turn=float(rng.choice((-1.0, 1.0))),
        nod=float(rng.uniform(0.15, 0.3)),
    )


def _place_objects(
    rng: np.random.Generator,
    room_lo: np.ndarray,
    room_hi: np.ndarray,
    structure: list[Box],
    keep_clear: np.ndarray,
) -> list[Shape]:
    """The structure, up to three pillars and 2-10 objects, each at the first random spot where
    it stands apart from the others and keeps clear of the paths; one that finds none is left
    out (tall objects rarely fit in small rooms, low ones pass under the cameras)."""
    placed = list(structure)
    pillars = rng.integers(0, 4) if rng.random() < 0.4 else 0
    makers = [_pillar] * pillars + [_furniture] * rng.integers(2, 11)
    for make in makers:
        for _ in range(_PLACEMENT_TRIES):
            candidate = make(rng, room_lo, room_hi)
            if _fits(candidate, placed, keep_clear):
                placed.extend(candidate)
                break
    return placed


def _footprint(shape: Shape) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) of the shape's outline on the floor."""
    if isinstance(shape, Sphere):
        centre = np.asarray(shape.centre[:2])
        return centre - shape.radius, centre + shape.radius
    return np.asarray(shape.lo[:2]), np.asarray(shape.hi[:2])


def _fits(candidate: list[Shape], placed: list[Shape], keep_clear: np.ndarray) -> bool:
    """Whether the candidate's footprint is apart from every placed one and it is clear of the
    paths' positions."""
    outlines = [_footprint(shape) for shape in candidate]
    lo = np.min([outline[0] for outline in outlines], axis=0)
    hi = np.max([outline[1] for outline in outlines], axis=0)
    for other in placed:
        other_lo, other_hi = _footprint(other)
        if (lo < other_hi + _FOOTPRINT_GAP).all() and (other_lo < hi + _FOOTPRINT_GAP).all():
            return False
    return all(object_distance(shape, keep_clear).min() > _OBJECT_MARGIN for shape in candidate)


def _box_at(
    rng: np.random.Generator, room_lo: np.ndarray, room_hi: np.ndarray, size: np.ndarray
) -> Box:
    """A box of `size` standing on the floor at a random spot inside the room."""
    corner = rng.uniform(room_lo[:2], room_hi[:2] - size[:2])
    lo = (*corner, 0.0)
    hi = (*(corner + size[:2]), size[2])
    return Box(tuple(map(float, lo)), tuple(map(float, hi)), _material(rng, 0.08, 0.4))


def _pillar(rng: np.random.Generator, room_lo: np.ndarray, room_hi: np.ndarray) -> list[Shape]:
    """A square pillar from floor to ceiling."""
    side = rng.uniform(0.25, 0.5)
    return [_box_at(rng, room_lo, room_hi, np.array((side, side, room_hi[2])))]


def _furniture(rng: np.random.Generator, room_lo: np.ndarray, room_hi: np.ndarray) -> list[Shape]:
    """A table, cabinet or crate (either way round), a crate stacked on a box, or a ball."""
    kind = rng.integers(len(_BOX_KINDS) + 2)
    if kind == len(_BOX_KINDS):
        return _stack(rng, room_lo, room_hi)
    if kind == len(_BOX_KINDS) + 1:
        radius = rng.uniform(0.2, 0.5)
        centre = (*rng.uniform(room_lo[:2] + radius, room_hi[:2] - radius), radius)
        return [Sphere(tuple(map(float, centre)), float(radius), _material(rng, 0.08, 0.4))]
    smallest, largest = _BOX_KINDS[list(_BOX_KINDS)[kind]]
    size = rng.uniform(smallest, largest)
    if rng.random() < 0.5:
        size[:2] = size[1::-1]
    return [_box_at(rng, room_lo, room_hi, size)]


def _stack(rng: np.random.Generator, room_lo: np.ndarray, room_hi: np.ndarray) -> list[Shape]:
    """A smaller crate resting somewhere on top of a bigger one."""
    bottom = _box_at(rng, room_lo, room_hi, rng.uniform((0.5, 0.5, 0.4), (0.9, 0.9, 0.8)))
    size = rng.uniform(0.25, 0.8, 3) * (np.asarray(bottom.hi) - bottom.lo)
    corner = rng.uniform(bottom.lo[:2], np.asarray(bottom.hi[:2]) - size[:2])
    lo = (*corner, bottom.hi[2])
    hi = (*(corner + size[:2]), bottom.hi[2] + size[2])
    top = Box(tuple(map(float, lo)), tuple(map(float, hi)), _material(rng, 0.08, 0.4))
    return [bottom, top]
