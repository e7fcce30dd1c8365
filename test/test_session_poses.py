"""tools/session_poses.py: the error it scores a session's poses by ignores the scale they are in
(each session has its own) but not a turn."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from tool_modules import load_tool


@pytest.fixture(scope='module')
def tool():
    return load_tool('session_poses')


def test_the_error_ignores_the_sessions_scale_but_not_a_turn(tool):
    rng = np.random.default_rng(0)
    truth = np.tile(np.eye(4), (7, 1, 1))
    truth[:, :3, :3] = Rotation.random(7, random_state=1).as_matrix()
    truth[:, :3, 3] = rng.normal(size=(7, 3))
    scaled = truth.copy()
    scaled[:, :3, 3] *= 3.7
    assert tool.clip_errors(scaled, truth) == pytest.approx((0.0, 0.0), abs=1e-9)
    turned = truth.copy()
    turned[0, :3, :3] = Rotation.from_euler('y', 7, degrees=True).as_matrix() @ truth[0, :3, :3]
    assert tool.clip_errors(turned, truth)[0] == pytest.approx(7 / len(truth))
