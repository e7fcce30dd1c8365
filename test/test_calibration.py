"""The camera's calibration against what the model sees (vggt_ros.calibration), without ROS."""

import numpy as np
import pytest

from vggt_ros.calibration import calibrated_focal, distortion_note, focal_check


@pytest.mark.parametrize('coefficients', [[], [0.0] * 5, [0.0] * 8])
def test_a_pinhole_camera_needs_no_note(coefficients):
    assert distortion_note('plumb_bob', coefficients) is None


def test_a_distorted_camera_is_told_to_rectify():
    note = distortion_note('equidistant', [0.01, 0.0, 0.0, 0.0])
    assert 'equidistant: 0.01, 0, 0, 0' in note and 'image_rect' in note
    assert 'unknown model' in distortion_note('', [0.2])


@pytest.mark.parametrize('fx', [0.0, -1.0, float('nan')])
def test_an_uncalibrated_camera_has_no_focal_length(fx):
    assert calibrated_focal(np.diag([fx, fx, 1.0]), 640, 518) is None
    assert focal_check(400.0, None) == '400.0 px predicted (no calibration)'


def test_the_focal_length_follows_the_resize():
    K = np.array([[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]])
    assert calibrated_focal(K, 640, 518) == pytest.approx(600 * 518 / 640)
    assert focal_check(510.0, 500.0) == '510.0 px predicted, 500.0 px calibrated (+2%)'
