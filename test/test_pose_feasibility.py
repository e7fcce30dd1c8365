"""tools/pose_feasibility.py: the goal as parallax, from ground truth. A turn in place moves the
camera's centre so little that its parallax is a fraction of a walk's, which is the README's
case that the turns' pose half asks for less than a pixel."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from vggt_ros.synthetic import make_sequence, write_bag
from vggt_ros.training.data import BagTopics, read_frames

TOOL = Path(__file__).resolve().parents[1] / 'tools' / 'pose_feasibility.py'
WIDTH = 112


@pytest.fixture(scope='module')
def feasibility():
    spec = importlib.util.spec_from_file_location('pose_feasibility', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def rows(feasibility, tmp_path_factory):
    """Each path's row, as numbers, and its bag; 120 frames as the held-out scenes have."""
    folder = tmp_path_factory.mktemp('paths')
    result = {}
    for kind in ('walk', 'rotate'):
        bag = write_bag(make_sequence(kind, 120, 224, 168), folder / kind)
        cells = feasibility.scene_row(bag, WIDTH).strip(' |').split('|')
        assert cells[0].strip() == kind
        result[kind] = (np.array([float(cell) for cell in cells[1:]]), bag)
    return result


def test_the_goal_is_a_tenth_of_the_static_camera_and_in_pixels_at_the_median_depth(rows):
    for values, bag in rows.values():
        static, goal, _, _, depth, _, goal_pixels = values
        assert goal == pytest.approx(0.1 * static, abs=1e-3)
        focal = read_frames(bag, WIDTH, BagTopics()).K[0, 0]
        assert goal_pixels == pytest.approx(focal * goal / depth, abs=0.1)


def test_a_turn_in_place_shows_a_fraction_of_a_walks_parallax(rows):
    walk, turn = rows['walk'][0], rows['rotate'][0]
    assert turn[5] < walk[5] / 3  # the session's parallax
    assert turn[6] < 1.0 < walk[6]  # the goal: under a pixel on the turn, not on the walk
