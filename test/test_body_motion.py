"""~/odometry's twist and covariances (vggt_ros.body_motion), without ROS."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from vggt_ros.body_motion import FLOOR_PER_SQRT_SECOND, UNKNOWN_VARIANCE, BodyMotion, body_twist

FRAMES = ('odom', 'base_link')
SECOND = 1_000_000_000


def pose(yaw=0.0, position=(0.0, 0.0, 0.0)):
    matrix = np.eye(4)
    matrix[:3, :3] = Rotation.from_rotvec([0.0, 0.0, yaw]).as_matrix()
    matrix[:3, 3] = position
    return matrix


def test_body_twist_is_in_the_body_frame():
    """A body turning about its z at 0.5 rad/s while driving 2 m/s along its own x."""

    def on_arc(t):  # a circle of radius 4 (v / omega), starting along x
        angle = 0.5 * t
        return pose(angle, [4 * np.sin(angle), 4 * (1 - np.cos(angle)), 1.0])

    linear, angular = body_twist(on_arc(1.0), on_arc(1.001), 0.001)
    assert linear == pytest.approx([2.0, 0.0, 0.0], abs=1e-3)
    assert angular == pytest.approx([0.0, 0.0, 0.5], abs=1e-9)


def test_the_first_twist_is_unknown_and_the_origin_exact():
    motion = BodyMotion().add(FRAMES, SECOND, pose(), 0.2)
    assert motion.twist is None
    np.testing.assert_array_equal(motion.twist_covariance, UNKNOWN_VARIANCE * np.eye(6))
    np.testing.assert_array_equal(motion.pose_covariance, np.zeros((6, 6)))


def test_driving_straight_the_heading_error_swings_the_side_not_the_distance():
    """1 m a second along x for 10 s, at 10 Hz: along x the variance is the steps' sum; across,
    each step's heading error moves every later position, so y grows faster."""
    body = BodyMotion()
    for index in range(101):
        motion = body.add(FRAMES, (index + 1) * SECOND // 10, pose(0.0, [0.1 * index, 0, 0]), 0.2)
    floor = FLOOR_PER_SQRT_SECOND * np.sqrt(0.1)
    step = np.hypot(0.2 * 0.1, floor[0]) ** 2
    turn = floor[1] ** 2  # nothing turned: the floor
    covariance = motion.pose_covariance
    assert covariance[0, 0] == pytest.approx(100 * step)
    assert covariance[5, 5] == pytest.approx(100 * turn)
    assert covariance[1, 1] > covariance[0, 0] + 100 * turn  # the lever arm of the heading
    assert covariance[1, 5] > 0  # turned left (+yaw), a body driving along +x ends up at +y
    np.testing.assert_allclose(motion.twist_covariance, np.diag([step] * 3 + [turn] * 3) * 100)
    assert motion.twist[0] == pytest.approx([1.0, 0.0, 0.0])


@pytest.mark.parametrize('hertz', [5, 30])
def test_a_still_body_claims_what_the_time_standing_gives_at_any_frame_rate(hertz):
    body = BodyMotion()
    for index in range(60 * hertz + 1):  # a minute
        motion = body.add(FRAMES, SECOND + index * SECOND // hertz, pose(), 0.2)
    expected = FLOOR_PER_SQRT_SECOND**2 * 60
    np.testing.assert_allclose(np.diag(motion.pose_covariance)[[0, 5]], expected, rtol=1e-6)


def test_a_reset_to_the_origin_starts_the_pose_covariance_again_a_jump_only_the_twist():
    body = BodyMotion()
    for index in range(5):
        body.add(FRAMES, (index + 1) * SECOND, pose(0.1 * index, [index, 0, 0]), 0.2)
    body.restart(origin=False)  # the world rescaled: the poses jump, the origin stays
    jumped = body.add(FRAMES, 6 * SECOND, pose(0.5, [10, 0, 0]), 0.2)
    assert jumped.twist is None and jumped.twist_covariance[0, 0] == UNKNOWN_VARIANCE
    assert jumped.pose_covariance[0, 0] > 0
    body.restart(origin=True)  # ~/reset: a new odom origin
    assert not body.add(FRAMES, 7 * SECOND, pose(), 0.2).pose_covariance.any()


poses = st.one_of(
    st.builds(pose, st.floats(-np.pi, np.pi), st.tuples(*[st.floats(-100, 100)] * 3)),
    st.just(np.full((4, 4), np.nan)),  # a model's NaN
)
events = st.lists(
    st.one_of(
        st.tuples(
            st.just('pose'), poses, st.integers(-2, 5), st.sampled_from([FRAMES, ('a', 'b')])
        ),
        st.tuples(st.just('restart'), st.booleans()),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(events, st.floats(0.0, 10.0))
def test_any_sequence_gives_finite_covariances_that_a_filter_can_use(events, step_error):
    """Stamps going back, repeated, frames changing, NaN poses, restarts: every covariance is
    symmetric, positive semi-definite and finite; the pose's never shrinks between restarts to
    the origin; the twist is known exactly when the last good pose was in the same frames,
    earlier."""
    body, stamp, last, grown = BodyMotion(), 10 * SECOND, None, np.zeros(6)
    for event in events:
        if event[0] == 'restart':
            body.restart(origin=event[1])
            last = None
            grown = np.zeros(6) if event[1] else grown
            continue
        _, matrix, advance, frames = event
        stamp += advance * SECOND // 10
        motion = body.add(frames, stamp, matrix, step_error)
        for covariance in (motion.pose_covariance, motion.twist_covariance):
            assert np.isfinite(covariance).all()
            np.testing.assert_allclose(covariance, covariance.T, atol=1e-9)
            assert np.linalg.eigvalsh(covariance).min() > -1e-6 * max(1.0, covariance.max())
        assert (np.diag(motion.pose_covariance) >= grown - 1e-9).all()
        grown = np.diag(motion.pose_covariance)
        finite = np.isfinite(matrix).all()
        known = finite and last is not None and last[0] == frames and stamp > last[1]
        assert (motion.twist is not None) == known
        if not known:
            assert motion.twist_covariance[0, 0] == UNKNOWN_VARIANCE
        last = (frames, stamp) if finite else last
