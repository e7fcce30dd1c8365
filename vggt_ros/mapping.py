"""An accumulated, voxel-downsampled, size-bounded point map in the world frame (pure numpy).

One point per voxel: the first one seen stays, so the map does not shimmer as later frames add
points to voxels it already has. When the map holds more than `max_points`, the voxels filled
longest ago go first, so memory stays bounded however long the stream runs while the map keeps
what the camera saw most recently.
"""

from __future__ import annotations

import numpy as np

# Voxel indices are packed into one int64 key, 21 bits per axis: +-2**20 voxels around the origin
# (+-21 km at 2 cm). Points beyond that are dropped rather than wrapped onto wrong voxels.
_BITS = 21
_HALF = 1 << (_BITS - 1)


class VoxelMap:
    """World-frame points, at most one per voxel of edge `voxel_size`, at most `max_points`."""

    def __init__(self, voxel_size: float, max_points: int) -> None:
        if voxel_size <= 0 or max_points < 1:
            raise ValueError(
                f'voxel_size must be > 0 and max_points >= 1, got {voxel_size} and {max_points}'
            )
        self.voxel_size = float(voxel_size)
        self.max_points = int(max_points)
        self.clear()

    def clear(self) -> None:
        """Forget every point (a new world)."""
        self._keys = np.empty(0, dtype=np.int64)
        self.points = np.empty((0, 3), dtype=np.float32)
        self.colours = np.empty((0, 3), dtype=np.uint8)
        self._ages = np.empty(0, dtype=np.int64)  # insertion number of each voxel's point
        self._insertions = 0

    def __len__(self) -> int:
        return len(self._keys)

    def _voxel_keys(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(keys, inside): one int64 per point, and which points are finite and within range."""
        cells = np.floor(points / self.voxel_size)
        inside = np.isfinite(cells).all(axis=1) & (np.abs(cells) < _HALF - 1).all(axis=1)
        cells = cells[inside].astype(np.int64) + _HALF
        keys = (cells[:, 0] << (2 * _BITS)) | (cells[:, 1] << _BITS) | cells[:, 2]
        return keys, inside

    def insert(self, points: np.ndarray, colours: np.ndarray) -> None:
        """Add Nx3 points with Nx3 uint8 colours; voxels already in the map keep their point."""
        if points.shape != colours.shape or points.ndim != 2 or points.shape[1] != 3:
            raise ValueError(
                f'expected Nx3 points and colours, got {points.shape}, {colours.shape}'
            )
        keys, inside = self._voxel_keys(points)
        self._insertions += 1
        all_keys = np.concatenate([self._keys, keys])
        # np.unique returns the first occurrence of each key: the map's own points come first.
        self._keys, first = np.unique(all_keys, return_index=True)
        self.points = np.concatenate([self.points, points[inside].astype(np.float32)])[first]
        self.colours = np.concatenate([self.colours, colours[inside]])[first]
        new_ages = np.full(len(keys), self._insertions, dtype=np.int64)
        self._ages = np.concatenate([self._ages, new_ages])[first]
        self._bound()

    def _bound(self) -> None:
        excess = len(self._keys) - self.max_points
        if excess <= 0:
            return
        # The oldest voxels go; ties at the cut broken by position, the same way every time. A
        # partition finds the cut in linear time (a full sort of 200k ages took 18 ms a frame).
        cut = np.partition(self._ages, excess - 1)[excess - 1]
        older = self._ages < cut
        at_cut = np.flatnonzero(self._ages == cut)
        drop = older
        drop[at_cut[: excess - int(older.sum())]] = True
        keep = ~drop
        self._keys, self._ages = self._keys[keep], self._ages[keep]
        self.points, self.colours = self.points[keep], self.colours[keep]
