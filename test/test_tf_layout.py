"""Where the pose goes in the TF tree (vggt_ros.tf_layout) without ROS: the layout's decisions
over a buffer whose contents change under it."""

import numpy as np

from vggt_ros import params
from vggt_ros.tf_buffer import TransformBuffer
from vggt_ros.tf_layout import TfLayout

S = 10**9
VALUES = {**params.DEFAULTS, 'tf_mode': 'odom', 'tf_timeout': 1.0}


def test_a_mount_once_found_is_waited_for_never_fallen_back_from():
    """A looping bag: the buffer is cleared and the arm's mount (on /tf) is gone for a while,
    long after tf_timeout. Odom mode waits for it instead of falling back to camera mode, which
    would give the camera a second parent when the mount comes back."""
    buffer = TransformBuffer()
    layout = TfLayout(buffer, VALUES)
    buffer.set_transform('base_link', 'camera', S, np.eye(4))
    placed = layout.place('camera', np.eye(4), np.eye(4), S, now_s=0.0, values=VALUES)
    assert [t[:2] for t in placed.transforms] == [('odom', 'base_link')]
    buffer.clear()
    later = layout.place('camera', np.eye(4), np.eye(4), 2 * S, now_s=10.0, values=VALUES)
    assert not later.transforms and later.note.startswith('waiting for base_link -> camera')
    assert layout.mode == 'odom'
    buffer.set_transform('base_link', 'camera', 3 * S, np.eye(4))
    back = layout.place('camera', np.eye(4), np.eye(4), 3 * S, now_s=11.0, values=VALUES)
    assert [t[:2] for t in back.transforms] == [('odom', 'base_link')]


def test_without_a_mount_ever_odom_mode_falls_back_to_camera_after_the_timeout():
    layout = TfLayout(TransformBuffer(), VALUES)
    waiting = layout.place('camera', np.eye(4), np.eye(4), S, now_s=0.0, values=VALUES)
    assert not waiting.transforms
    placed = layout.place('camera', np.eye(4), np.eye(4), 2 * S, now_s=2.0, values=VALUES)
    assert layout.mode == 'camera'
    assert [t[:2] for t in placed.transforms] == [('vggt_world', 'camera')]


def test_map_mode_waits_for_a_metric_pose_once_per_world():
    """Before the first metric estimate no map -> odom (it would correct metric wheels with the
    model's units); an estimate that lapses later (a robot standing still) keeps it going; a
    user's reset waits again."""
    values = {**VALUES, 'tf_mode': 'map'}
    buffer = TransformBuffer()
    buffer.set_transform('base_link', 'camera', 0, np.eye(4), static=True)
    layout = TfLayout(buffer, values)
    published = []
    for second, metric in enumerate([False, True, False], start=1):
        buffer.set_transform('odom', 'base_link', second * S, np.eye(4))
        placed = layout.place('camera', np.eye(4), np.eye(4), second * S, 0.0, values, metric)
        published.append(bool(placed.transforms))
    assert published == [False, True, True]
    layout.restart()
    buffer.set_transform('odom', 'base_link', 4 * S, np.eye(4))
    placed = layout.place('camera', np.eye(4), np.eye(4), 4 * S, 0.0, values, False)
    assert not placed.transforms and placed.note.startswith('waiting for the metric scale')
