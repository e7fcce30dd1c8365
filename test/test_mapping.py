"""The accumulated voxel map: one point per voxel, first one kept, oldest voxels evicted."""

import numpy as np
import pytest

from vggt_ros.mapping import VoxelMap


def colours(n, value=0):
    return np.full((n, 3), value, np.uint8)


def test_one_point_per_voxel_and_the_first_one_stays():
    voxel_map = VoxelMap(voxel_size=1.0, max_points=100)
    voxel_map.insert(np.array([[0.2, 0.2, 0.2], [0.8, 0.9, 0.1], [1.5, 0.0, 0.0]]), colours(3, 1))
    assert len(voxel_map) == 2
    voxel_map.insert(np.array([[0.5, 0.5, 0.5], [-0.5, 0.0, 0.0]]), colours(2, 2))
    assert len(voxel_map) == 3
    first = voxel_map.points[np.all(np.floor(voxel_map.points) == 0, axis=1)]
    assert first.tolist() == [pytest.approx([0.2, 0.2, 0.2])]
    assert voxel_map.points.dtype == np.float32 and voxel_map.colours.dtype == np.uint8


def test_non_finite_and_far_points_are_dropped():
    voxel_map = VoxelMap(voxel_size=0.01, max_points=100)
    points = np.array([[np.nan, 0, 0], [np.inf, 0, 0], [1e9, 0, 0], [0.0, 0.0, 0.0]])
    voxel_map.insert(points, colours(4))
    assert voxel_map.points.tolist() == [[0.0, 0.0, 0.0]]


def test_the_oldest_voxels_go_first_when_full():
    voxel_map = VoxelMap(voxel_size=1.0, max_points=3)
    for x in range(5):
        voxel_map.insert(np.array([[x + 0.5, 0.5, 0.5]]), colours(1, x))
    assert sorted(voxel_map.points[:, 0].tolist()) == [2.5, 3.5, 4.5]
    assert sorted(voxel_map.colours[:, 0].tolist()) == [2, 3, 4]


def test_negative_coordinates_get_their_own_voxels():
    voxel_map = VoxelMap(voxel_size=1.0, max_points=100)
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
    voxel_map.insert(corners, colours(8))
    assert len(voxel_map) == 8


def test_clear_and_bad_arguments():
    voxel_map = VoxelMap(voxel_size=0.1, max_points=10)
    voxel_map.insert(np.zeros((2, 3)), colours(2))
    voxel_map.clear()
    assert len(voxel_map) == 0 and voxel_map.points.shape == (0, 3)
    with pytest.raises(ValueError):
        voxel_map.insert(np.zeros((2, 3)), colours(3))
    with pytest.raises(ValueError):
        VoxelMap(voxel_size=0.0, max_points=10)
