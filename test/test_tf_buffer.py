"""vggt_ros.tf_buffer against hand-computed transforms and tf2's rules (no ROS needed)."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from vggt_ros.tf_buffer import ExtrapolationError, FrameNotFound, TransformBuffer

S = 10**9  # nanoseconds per second
C = math.sqrt(0.5)
RZ90 = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
RX90 = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]
RY90 = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]
RZ180 = [[-1, 0, 0], [0, -1, 0], [0, 0, 1]]


def rigid(rotation, translation):
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = translation
    return matrix


@pytest.fixture
def chain():
    """world -> odom -> base_link -> camera, a quarter turn at each level; lidar beside camera."""
    buffer = TransformBuffer()
    buffer.set_transform('world', 'odom', 0, rigid(RZ90, (1, 5, 0)), static=True)
    buffer.set_transform('odom', 'base_link', 0, rigid(RX90, (0, 2, 0)), static=True)
    buffer.set_transform('base_link', 'camera', 0, rigid(RY90, (0, 0, 3)), static=True)
    buffer.set_transform('base_link', 'lidar', 0, rigid(RZ180, (0, 0, 1)), static=True)
    return buffer


def test_three_level_chain_both_ways(chain):
    # Rz Rx Ry by hand; t = (1, 5, 0) + Rz((0, 2, 0) + Rx (0, 0, 3)) = (1, 5, 0) + Rz(0, -1, 0).
    world_from_camera = rigid([[-1, 0, 0], [0, 0, 1], [0, 1, 0]], (2, 5, 0))
    assert np.allclose(chain.lookup('world', 'camera', 0), world_from_camera, atol=1e-12)
    # Inverse: R is symmetric, t = -R (2, 5, 0).
    camera_from_world = rigid([[-1, 0, 0], [0, 0, 1], [0, 1, 0]], (2, 0, -5))
    assert np.allclose(chain.lookup('camera', 'world', 0), camera_from_world, atol=1e-12)


def test_siblings_meet_at_their_parent(chain):
    # inv(base_from_lidar) @ base_from_camera: Rz180 Ry90, t = Rz180 (0, 0, 3) - (0, 0, 1).
    lidar_from_camera = rigid([[0, 0, -1], [0, -1, 0], [-1, 0, 0]], (0, 0, 2))
    assert np.allclose(chain.lookup('lidar', 'camera', 0), lidar_from_camera, atol=1e-12)


def test_same_frame_is_identity_and_parents_and_frames(chain):
    assert np.array_equal(chain.lookup('camera', 'camera', 5 * S), np.eye(4))
    assert chain.parent('camera') == 'base_link' and chain.parent('world') is None
    assert chain.parent('nowhere') is None
    assert chain.frames() == ['base_link', 'camera', 'lidar', 'odom', 'world']


@pytest.fixture
def moving():
    """odom -> base_link turning a quarter about z from 1 s to 3 s; a static camera on it."""
    buffer = TransformBuffer()
    buffer.set_transform('odom', 'base_link', 1 * S, rigid(RX90, (0, 0, 0)))
    buffer.set_transform('odom', 'base_link', 3 * S, rigid(np.dot(RX90, RZ90), (2, 4, 0)))
    buffer.set_transform('base_link', 'camera', 0, rigid(RY90, (0, 0, 1)), static=True)
    return buffer


def test_midpoint_interpolates_translation_and_rotation(moving):
    middle = moving.lookup('odom', 'base_link', 2 * S)
    assert np.allclose(middle[:3, 3], (1, 2, 0), atol=1e-12)
    # Half of the z quarter turn after Rx90: q(x90) * q(z45) = sqrt(1/2) (c8, -s8, s8, c8).
    s8, c8 = math.sin(math.pi / 8), math.cos(math.pi / 8)
    quaternion = Rotation.from_matrix(middle[:3, :3]).as_quat(canonical=True)
    assert np.allclose(quaternion, C * np.array([c8, -s8, s8, c8]), atol=1e-12)


def test_static_and_dynamic_links_compose(moving):
    odom_from_base = moving.lookup('odom', 'base_link', 2 * S)
    expected = odom_from_base @ rigid(RY90, (0, 0, 1))
    assert np.allclose(moving.lookup('odom', 'camera', 2 * S), expected, atol=1e-12)
    assert np.allclose(moving.lookup('base_link', 'camera', 10**6 * S), rigid(RY90, (0, 0, 1)))


def test_endpoints_are_exact(moving):
    assert np.array_equal(moving.lookup('odom', 'base_link', 1 * S), rigid(RX90, (0, 0, 0)))
    end = rigid(np.dot(RX90, RZ90), (2, 4, 0))
    assert np.array_equal(moving.lookup('odom', 'base_link', 3 * S), end)


@pytest.mark.parametrize(('stamp', 'direction'), [(S // 2, 'past'), (3 * S + 1, 'future')])
def test_extrapolation_is_refused_with_the_range(moving, stamp, direction):
    with pytest.raises(ExtrapolationError, match=direction) as raised:
        moving.lookup('odom', 'camera', stamp)
    message = str(raised.value)
    assert "'odom'" in message and "'base_link'" in message and "'camera'" in message
    assert '1.000000000 s' in message and '3.000000000 s' in message
    assert not moving.can_transform('odom', 'camera', stamp)
    assert issubclass(ExtrapolationError, LookupError)


def test_time_zero_is_the_latest_common_time(moving):
    moving.set_transform('camera', 'tool', S // 2, rigid(RZ90, (1, 0, 0)))
    moving.set_transform('camera', 'tool', 2 * S, rigid(RZ180, (0, 1, 0)))
    assert np.allclose(moving.lookup('odom', 'tool', 0), moving.lookup('odom', 'tool', 2 * S))
    assert np.allclose(moving.lookup('odom', 'camera', 0), moving.lookup('odom', 'camera', 3 * S))


def test_history_older_than_cache_time_is_dropped():
    buffer = TransformBuffer(cache_time=2.0)
    for second in range(1, 6):
        buffer.set_transform('odom', 'base_link', second * S, rigid(np.eye(3), (second, 0, 0)))
    assert np.allclose(buffer.lookup('odom', 'base_link', 3 * S)[:3, 3], (3, 0, 0))
    with pytest.raises(ExtrapolationError, match=r'3\.000000000 s to 5\.000000000 s'):
        buffer.lookup('odom', 'base_link', 2 * S + S // 2)


def test_transforms_older_than_the_history_are_refused_until_a_clear():
    """As tf2 (TF_OLD_DATA): a looping bag's new transforms are older than the kept history and
    dropped; the node clears the buffer when its images jump back, and then they are kept."""
    buffer = TransformBuffer(cache_time=10.0)
    for second in range(30):
        buffer.set_transform('odom', 'base', second * S, rigid(np.eye(3), (second, 0, 0)))
    buffer.set_transform('odom', 'base', 0, rigid(np.eye(3), (100, 0, 0)))  # the loop
    assert not buffer.can_transform('odom', 'base', S // 2)
    buffer.clear()
    buffer.set_transform('odom', 'base', 0, rigid(np.eye(3), (100, 0, 0)))
    buffer.set_transform('odom', 'base', 1 * S, rigid(np.eye(3), (101, 0, 0)))
    assert buffer.lookup('odom', 'base', S // 2)[0, 3] == pytest.approx(100.5)


def test_clear_forgets_the_dynamic_transforms_and_keeps_the_static(chain):
    chain.set_transform('camera', 'marker', S, rigid(np.eye(3), (1, 0, 0)))
    chain.clear()
    assert chain.can_transform('world', 'camera', 0)  # static
    assert chain.parent('marker') is None and not chain.can_transform('camera', 'marker', 0)


def test_unknown_and_disconnected_frames(chain):
    with pytest.raises(FrameNotFound, match="'nowhere'"):
        chain.lookup('world', 'nowhere', 0)
    chain.set_transform('map', 'other', 0, rigid(RZ90, (0, 0, 0)), static=True)
    with pytest.raises(FrameNotFound, match="not connected.*'world' and 'map'"):
        chain.lookup('camera', 'other', 0)
    assert not chain.can_transform('camera', 'other', 0)
    assert issubclass(FrameNotFound, LookupError)


def test_a_new_parent_replaces_the_old():
    buffer = TransformBuffer()
    buffer.set_transform('odom', 'camera', S, rigid(RZ90, (1, 0, 0)))
    buffer.set_transform('base_link', 'camera', 2 * S, rigid(RX90, (0, 1, 0)))
    assert buffer.parent('camera') == 'base_link'
    assert np.allclose(buffer.lookup('base_link', 'camera', 0), rigid(RX90, (0, 1, 0)))
    with pytest.raises(FrameNotFound, match="'odom'"):
        buffer.lookup('odom', 'camera', 0)


def test_loops_and_self_transforms_are_refused(chain):
    with pytest.raises(ValueError, match='loop: world -> camera -> base_link -> odom -> world'):
        chain.set_transform('camera', 'world', 0, np.eye(4))
    with pytest.raises(ValueError, match='distinct'):
        chain.set_transform('odom', '/odom', 0, np.eye(4))
    with pytest.raises(ValueError, match='rigid'):
        chain.set_transform('odom', 'x', 0, np.diag([2.0, 1.0, 1.0, 1.0]))
    assert chain.parent('world') is None


def stamped(parent, child, sec, quaternion):
    x, y, z, w = quaternion
    return SimpleNamespace(
        header=SimpleNamespace(frame_id=parent, stamp=SimpleNamespace(sec=sec, nanosec=5)),
        child_frame_id=child,
        transform=SimpleNamespace(
            translation=SimpleNamespace(x=1.0, y=2.0, z=3.0),
            rotation=SimpleNamespace(x=x, y=y, z=z, w=w),
        ),
    )


def test_messages_lose_leading_slashes_and_bad_transforms_only():
    buffer = TransformBuffer()
    message = SimpleNamespace(
        transforms=[
            stamped('/odom', '/base_link', 7, (0.0, 0.0, C, C)),
            stamped('odom', 'broken', 7, (0.0, 0.0, 0.5, 0.5)),
        ]
    )
    (refused,) = buffer.add_message(message, static=False)
    assert "'broken'" in refused and 'normalised' in refused
    assert buffer.frames() == ['base_link', 'odom']
    assert np.allclose(buffer.lookup('odom', 'base_link', 7 * S + 5), rigid(RZ90, (1, 2, 3)))


unit = st.floats(-1.0, 1.0, allow_nan=False)
rigids = st.builds(
    lambda q, t: rigid(Rotation.from_quat(q).as_matrix(), t),
    st.tuples(unit, unit, unit, unit).filter(lambda q: np.linalg.norm(q) > 0.1),
    st.tuples(*[st.floats(-10.0, 10.0, allow_nan=False)] * 3),
)


@st.composite
def trees(draw):
    """A random tree: frame i hangs under a random earlier frame, statically or moving."""
    buffer = TransformBuffer()
    size = draw(st.integers(2, 7))
    for child in range(1, size):
        parent = f'f{draw(st.integers(0, child - 1))}'
        if draw(st.booleans()):
            buffer.set_transform(parent, f'f{child}', 0, draw(rigids), static=True)
        else:
            buffer.set_transform(parent, f'f{child}', 0, draw(rigids))
            buffer.set_transform(parent, f'f{child}', 10 * S, draw(rigids))
    frames = st.sampled_from([f'f{i}' for i in range(size)])
    return buffer, draw(frames), draw(frames), draw(frames), draw(st.integers(0, 10 * S))


@settings(max_examples=60, deadline=None)
@given(trees())
def test_lookups_compose_and_invert(tree):
    buffer, a, b, c, stamp = tree
    a_from_b, b_from_a = buffer.lookup(a, b, stamp), buffer.lookup(b, a, stamp)
    assert np.allclose(a_from_b @ buffer.lookup(b, c, stamp), buffer.lookup(a, c, stamp), atol=1e-9)
    assert np.allclose(a_from_b, np.linalg.inv(b_from_a), atol=1e-9)
