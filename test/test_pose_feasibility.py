"""tools/pose_feasibility.py: the goal as parallax, from ground truth. A turn in place moves the
camera's centre so little that its parallax is a fraction of a walk's, which is the README's
case that the turns' pose half asks for less than a pixel."""

import pytest
from tool_modules import load_tool

from vggt_ros.synthetic import make_sequence, write_bag
from vggt_ros.training.data import BagTopics, read_frames

WIDTH = 112


@pytest.fixture(scope='module')
def feasibility():
    return load_tool('pose_feasibility')


@pytest.fixture(scope='module')
def figures(feasibility, tmp_path_factory):
    """Each path's figures and bag; 120 frames as the held-out scenes have."""
    folder = tmp_path_factory.mktemp('paths')
    result = {}
    for kind in ('walk', 'rotate'):
        bag = write_bag(make_sequence(kind, 120, 224, 168), folder / kind)
        result[kind] = (feasibility.scene_figures(bag, WIDTH), bag)
    return result


def test_the_goal_is_a_tenth_of_the_static_camera_and_in_pixels_at_the_median_depth(figures):
    for scene, bag in figures.values():
        assert scene['goal'] == pytest.approx(0.1 * scene['static'])
        focal = read_frames(bag, WIDTH, BagTopics()).K[0, 0]
        assert scene['goal_parallax'] == pytest.approx(focal * scene['goal'] / scene['depth'])


def test_a_turn_in_place_shows_a_fraction_of_a_walks_parallax(figures):
    walk, turn = figures['walk'][0], figures['rotate'][0]
    assert turn['parallax'] < walk['parallax'] / 3  # over one session
    assert turn['goal_parallax'] < 1.0 < walk['goal_parallax']  # under a pixel on the turn only


def test_the_markdown_row_has_a_cell_for_every_column(feasibility, figures):
    row = feasibility.markdown_row('walk', figures['walk'][0])
    assert row.startswith('| walk | ') and row.count('|') == 9
