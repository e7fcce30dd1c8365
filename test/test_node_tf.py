"""On a robot (REP-105), through real rclpy: the node joins the TF tree it finds and never gives a
frame a second parent. The stand-in model's camera poses are known (node_harness.POSES)."""

import math
import threading
import time

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from node_harness import (
    CAMERA,
    HEIGHT,
    NS,
    POSES,
    WIDTH,
    rgb_image,
    rot_y,
    stamp_of,
    transform_matrix,
)
from rclpy.qos import QoSDurabilityPolicy, QoSProfile
from standin_model import SessionScaledStandIn, indexed_image
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage

from vggt_ros import messages
from vggt_ros.bench.node_run import stamp_ns
from vggt_ros.reconstructor import Reconstructor
from vggt_ros.synthetic import make_robot_sequence

STATIC = QoSProfile(depth=10, durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)


def rigid(rotation, translation):
    matrix = np.eye(4)
    matrix[:3, :3], matrix[:3, 3] = rotation, translation
    return matrix


def rot_x(angle):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


# A camera looking forward, tilted 0.3 rad down, 0.2 m ahead of and 0.5 m above base_link.
OPTICAL_IN_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
MOUNT = rigid(OPTICAL_IN_BODY @ rot_x(-0.3), [0.2, 0.0, 0.5])  # base_link <- camera


def model_pose(index):
    """The stand-in's camera pose in its first camera's optical frame."""
    angle, centre = POSES[index % len(POSES)]
    return rigid(rot_y(angle), centre)


def matrix_of(transform):
    rotation, translation = transform_matrix(transform.transform)
    return rigid(rotation, translation)


class Tree:
    """Everything on /tf and /tf_static, seen from the peer."""

    def __init__(self, harness):
        self.harness = harness
        self.edges = []
        self._lock = threading.Lock()
        self.static = harness.peer.create_publisher(TFMessage, '/tf_static', STATIC)
        self.dynamic = harness.peer.create_publisher(TFMessage, '/tf', 100)
        harness.peer.create_subscription(TFMessage, '/tf_static', self._keep, STATIC)
        harness.peer.create_subscription(TFMessage, '/tf', self._keep, 100)

    def _keep(self, message):
        with self._lock:
            self.edges += [(t.header.frame_id, t.child_frame_id) for t in message.transforms]

    def parents(self):
        with self._lock:
            edges = set(self.edges)
        children = [child for _, child in edges]
        return {child: {p for p, c in edges if c == child} for child in children}

    def publish(self, parent, child, matrix, stamp, static=False):
        transform = messages.matrix_to_transform(matrix, stamp, parent, child)
        (self.static if static else self.dynamic).publish(TFMessage(transforms=[transform]))

    def give(self, parent, child, matrix, stamp):
        """Publish a moving edge at `stamp` and wait until the node can look it up then."""
        self.publish(parent, child, matrix, stamp)
        transforms = self.harness.node._transforms
        self.harness.wait(
            lambda: transforms.can_transform(parent, child, stamp_ns(stamp)),
            f'{parent} -> {child} at {stamp}',
        )


def robot(harness_factory, **parameters):
    harness = harness_factory(tf_mode=parameters.pop('tf_mode', 'odom'), **parameters)
    tree = Tree(harness)
    tree.publish('base_link', CAMERA, MOUNT, rgb_image(0).header.stamp, static=True)
    harness.wait(lambda: harness.node._transforms.can_transform('base_link', CAMERA, 0), 'mount')
    return harness, tree


def node_tf(harness, image, child):
    """The node's transform to `child` stamped like `image`."""
    harness.wait(
        lambda: any(
            stamp_of(m) == image.header.stamp and m.transforms[0].child_frame_id == child
            for m in harness.messages('/tf')
        ),
        f'TF to {child}',
    )
    (message,) = [
        m
        for m in harness.messages('/tf')
        if stamp_of(m) == image.header.stamp and m.transforms[0].child_frame_id == child
    ]
    return message.transforms[0]


def test_odom_mode_joins_the_robot_tree_with_one_parent_per_frame(harness_factory):
    harness, tree = robot(harness_factory)
    for index in range(3):
        image = rgb_image(index)
        harness.send(image, wait_topic=f'{NS}/depth')
        published = node_tf(harness, image, 'base_link')
        assert published.header.frame_id == 'odom'
        odom_from_base = matrix_of(published)
        # odom -> base_link -> camera is the model's camera pose, the odom origin being the
        # base pose at the first frame.
        np.testing.assert_allclose(odom_from_base @ MOUNT, MOUNT @ model_pose(index), atol=1e-6)
        odometry = harness.wait_for(f'{NS}/odometry', image.header.stamp)
        assert (odometry.header.frame_id, odometry.child_frame_id) == ('odom', 'base_link')
    moving = harness.wait_for(f'{NS}/odometry', rgb_image(1).header.stamp).twist.twist.linear
    seconds = 1 + 1e-9  # between the stamps of frames 0 and 1
    expected = np.array([math.cos(0.3), 0.0, -math.sin(0.3)]) / seconds
    np.testing.assert_allclose([moving.x, moving.y, moving.z], expected, atol=1e-6)
    forward = matrix_of(node_tf(harness, rgb_image(1), 'base_link'))[:3, 3]
    # The camera moved 1 along its optical z, tilted down by 0.3 rad: forward and down in REP-103.
    np.testing.assert_allclose(forward, [math.cos(0.3), 0.0, -math.sin(0.3)], atol=1e-6)
    harness.wait(lambda: 'vggt_world' in tree.parents(), 'world_frame on /tf_static')
    parents = tree.parents()
    assert all(len(p) == 1 for p in parents.values()), parents
    assert parents == {CAMERA: {'base_link'}, 'base_link': {'odom'}, 'vggt_world': {'odom'}}


def test_odom_mode_follows_a_moving_mount(harness_factory):
    """A camera panning on a still robot (pan-tilt, arm): the mount is looked up at each image's
    stamp, so the camera's motion stays the mount's and odom -> base_link stays put, also in a
    world restarted by ~/reset with the camera turned."""
    harness = harness_factory(tf_mode='odom')
    tree = Tree(harness)
    reset = harness.peer.create_client(Trigger, f'{NS}/reset')
    assert reset.wait_for_service(10.0)
    origin = mount = MOUNT
    for seq, session_index in enumerate([0, 1, 2, 0, 1]):
        if seq == 3:
            assert harness.call(reset.call_async(Trigger.Request())).success
            origin = mount  # the camera as the last frame left it: the new world's first
        image = rgb_image(seq)
        mount = origin @ model_pose(session_index)  # the stand-in's motion, all of it the mount's
        tree.give('base_link', CAMERA, mount, image.header.stamp)
        harness.send(image, wait_topic=f'{NS}/depth')
        base = matrix_of(node_tf(harness, image, 'base_link'))
        np.testing.assert_allclose(base, np.eye(4), atol=1e-6)


def test_a_moving_mount_whose_tf_arrives_late_is_taken_at_each_stamp(harness_factory):
    """An arm's TF reaches the node after its first frames: its history, stamp by stamp, puts
    the odom origin (the base at the first frame) and each later frame right, so a still base
    stays put however far the arm moved meanwhile."""
    harness = harness_factory(tf_mode='odom', tf_timeout=30.0)
    tree = Tree(harness)
    images = [rgb_image(seq) for seq in range(3)]
    harness.send(images[0], wait_topic=f'{NS}/depth')  # no mount yet: waiting
    for seq, image in enumerate(images):  # the arm's history, all of it late
        tree.give('base_link', CAMERA, MOUNT @ model_pose(seq), image.header.stamp)
    for image in images[1:]:
        harness.send(image, wait_topic=f'{NS}/depth')
        base = matrix_of(node_tf(harness, image, 'base_link'))
        np.testing.assert_allclose(base, np.eye(4), atol=1e-6)


@pytest.mark.parametrize(
    ('parent', 'advice'),
    [('odom', 'use tf_mode map'), ('base_footprint', 'use base_frame base_footprint')],
)
def test_odom_mode_gives_a_base_with_a_parent_no_second_one(harness_factory, parent, advice):
    """Wheel odometry already publishing odom -> base_link, or a URDF rooted at base_footprint:
    odom mode refuses, says why and what to set, and publishes no odom -> base_link."""
    harness, tree = robot(harness_factory)
    tree.publish(parent, 'base_link', np.eye(4), rgb_image(0).header.stamp, static=True)
    harness.wait(lambda: harness.node._transforms.parent('base_link') == parent, 'the parent')
    for seq in range(2):
        harness.send(rgb_image(seq), wait_topic=f'{NS}/depth')
    harness.wait(lambda: harness.logs('already has the parent'), 'the refusal')
    (refusal,) = set(harness.logs('already has the parent'))
    assert f'base_link already has the parent {parent}' in refusal and advice in refusal
    assert not [m for m in harness.messages('/tf') if m.transforms[0].child_frame_id == 'base_link']
    assert all(len(p) == 1 for p in tree.parents().values())


def test_map_mode_corrects_wheel_odometry(harness_factory):
    harness, tree = robot(harness_factory, tf_mode='map')
    rng = np.random.default_rng(0)
    for index in range(3):
        image = rgb_image(index)
        truth = MOUNT @ model_pose(index) @ np.linalg.inv(MOUNT)  # base in the map
        drift = rigid(rot_x(rng.normal(0, 0.05)), rng.normal(0, 0.1, 3))  # noisy wheels
        wheel = drift @ truth
        tree.give('odom', 'base_link', wheel, image.header.stamp)  # at the image stamp
        harness.send(image, wait_topic=f'{NS}/depth')
        map_from_odom = matrix_of(node_tf(harness, image, 'odom'))
        np.testing.assert_allclose(map_from_odom @ wheel, truth, atol=1e-6)
    assert tree.parents()['odom'] == {'map'}


def test_map_mode_goes_on_when_a_bag_loops(harness_factory):
    """Time goes back 50 s (ros2 bag play --loop): the image that jumps back clears the TF
    buffer, which would refuse the new loop's wheel odometry as older than its history, and
    map -> odom is published again from the next frame on."""
    harness, tree = robot(harness_factory, tf_mode='map')
    for seq in range(3):
        image = rgb_image(seq)
        tree.give('odom', 'base_link', np.eye(4), image.header.stamp)
        harness.send(image, wait_topic=f'{NS}/depth')
        node_tf(harness, image, 'odom')
    stale = rgb_image(3, stamp=Time(sec=50))
    tree.publish('odom', 'base_link', np.eye(4), stale.header.stamp)  # refused: older
    harness.send(stale, wait_topic=f'{NS}/depth')  # the loop: a new session, TF cleared
    harness.wait(lambda: harness.logs('time jumped backwards'), 'the reset')
    image = rgb_image(4, stamp=Time(sec=51))
    tree.give('odom', 'base_link', np.eye(4), image.header.stamp)
    harness.send(image, wait_topic=f'{NS}/depth')
    node_tf(harness, image, 'odom')
    assert harness.node._transforms.can_transform('base_link', CAMERA, 0)  # the static mount


def test_camera_mode_only_for_a_camera_without_parent(harness_factory):
    harness = harness_factory(tf_mode='odom', tf_timeout=0.3)
    harness.send(rgb_image(0), wait_topic=f'{NS}/depth')  # waits for a mount that never comes
    assert not harness.messages('/tf')
    time.sleep(0.4)  # past tf_timeout: the camera frame has no parent, so camera mode
    tf = harness.send(rgb_image(1))
    assert tf.transforms[0].header.frame_id == 'vggt_world'
    harness.send(rgb_image(2))
    harness.wait(lambda: harness.logs('tf_mode camera'), 'the fallback, said once')
    assert len(harness.logs('tf_mode camera')) == 1


def test_before_the_mount_odometry_and_path_describe_the_camera(harness_factory):
    harness = harness_factory(tf_mode='odom', tf_timeout=60.0)
    for index in (0, 1):  # no mount yet: no TF, and the camera in the world frame
        image = rgb_image(index)
        harness.send(image, wait_topic=f'{NS}/depth')
        odometry = harness.wait_for(f'{NS}/odometry', image.header.stamp)
        assert (odometry.header.frame_id, odometry.child_frame_id) == ('vggt_world', CAMERA)
        assert odometry.pose.pose.position.z == pytest.approx(index)  # 1 along the optical z
    assert not harness.messages('/tf')
    tree = Tree(harness)
    tree.publish('base_link', CAMERA, MOUNT, rgb_image(0).header.stamp, static=True)
    harness.wait(lambda: harness.node._transforms.can_transform('base_link', CAMERA, 0), 'mount')
    image = rgb_image(2)
    harness.send(image, wait_topic=f'{NS}/depth')
    odometry = harness.wait_for(f'{NS}/odometry', image.header.stamp)
    assert (odometry.header.frame_id, odometry.child_frame_id) == ('odom', 'base_link')
    twist = odometry.twist.twist.linear
    assert [twist.x, twist.y, twist.z] == [0.0, 0.0, 0.0]  # no velocity across the change
    path = harness.wait_for(f'{NS}/path', image.header.stamp)
    assert path.header.frame_id == 'odom' and len(path.poses) == 1  # begun again in odom


def test_a_camera_with_another_parent_gets_no_second_one(harness_factory):
    harness = harness_factory(tf_mode='odom', tf_timeout=0.3)
    tree = Tree(harness)
    tree.publish('rig', CAMERA, np.eye(4), rgb_image(0).header.stamp, static=True)
    harness.wait(lambda: harness.node._transforms.parent(CAMERA) == 'rig', 'the rig')
    harness.send(rgb_image(0), wait_topic=f'{NS}/depth')
    time.sleep(0.4)  # past tf_timeout
    for index in (1, 2):
        harness.send(rgb_image(index), wait_topic=f'{NS}/depth')
    harness.wait(lambda: harness.logs('second parent'), 'the refusal')
    assert tree.parents()[CAMERA] == {'rig'}
    assert not [m for m in harness.messages('/tf') if m.transforms[0].child_frame_id == CAMERA]


def test_camera_mode_gives_a_drivers_camera_frame_no_second_parent(harness_factory):
    harness = harness_factory(tf_mode='camera')
    tree = Tree(harness)
    tree.publish('rig', 'rig_camera_link', np.eye(4), rgb_image(0).header.stamp, static=True)
    tree.publish('rig_camera_link', CAMERA, np.eye(4), rgb_image(0).header.stamp, static=True)
    harness.wait(lambda: harness.node._transforms.parent(CAMERA) == 'rig_camera_link', 'the rig')
    for index in (0, 1):
        harness.send(rgb_image(index), wait_topic=f'{NS}/depth')
    harness.wait(lambda: harness.logs('second parent'), 'the refusal')
    assert 'tf_mode odom with base_frame rig' in harness.logs('second parent')[0]
    assert tree.parents()[CAMERA] == {'rig_camera_link'}
    assert not harness.messages('/tf')


def image_at(pixels, stamp_ns):
    seconds, nanoseconds = divmod(int(stamp_ns), 1_000_000_000)
    header = Header(stamp=Time(sec=seconds, nanosec=nanoseconds), frame_id=CAMERA)
    return messages.array_to_image(pixels, 'rgb8', header)


def robot_scene(harness_factory, sequence, **parameters):
    """A node whose stand-in sees `sequence` perfectly, on the sequence's own mount."""
    harness = harness_factory(source=sequence.model_frame, **parameters)
    tree = Tree(harness)
    tree.publish('base_link', CAMERA, sequence.mount, rgb_image(0).header.stamp, static=True)
    harness.wait(lambda: harness.node._transforms.can_transform('base_link', CAMERA, 0), 'mount')
    return harness, tree


def test_odom_mode_follows_the_ground_truth_base_of_a_robot_scene(harness_factory):
    sequence = make_robot_sequence('walk', 5, WIDTH, HEIGHT)
    harness, tree = robot_scene(harness_factory, sequence, tf_mode='odom')
    pixels = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for index, stamp in enumerate(sequence.stamps):
        image = image_at(pixels, stamp)
        harness.send(image, wait_topic=f'{NS}/depth')
        truth = np.linalg.inv(sequence.base_poses[0]) @ sequence.base_poses[index]
        np.testing.assert_allclose(
            matrix_of(node_tf(harness, image, 'base_link')), truth, atol=1e-5
        )
    assert np.linalg.norm(truth[:3, 3]) > 0.1  # the robot did move


def test_map_mode_puts_the_base_on_the_ground_truth_despite_noisy_wheels(harness_factory):
    sequence = make_robot_sequence('orbit', 5, WIDTH, HEIGHT, wheel_noise=0.05)
    harness, tree = robot_scene(harness_factory, sequence, tf_mode='map')
    pixels = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    odometry = iter(zip(sequence.odometry_stamps, sequence.odometry_poses, strict=True))
    for index, stamp in enumerate(sequence.stamps):
        for odometry_stamp, wheel in odometry:  # the wheels at twice the image rate, up to now
            tree.publish('odom', 'base_link', wheel, image_at(pixels, odometry_stamp).header.stamp)
            if odometry_stamp >= stamp:
                break
        harness.wait(
            lambda stamp=stamp: harness.node._transforms.can_transform('odom', 'base_link', stamp),
            'wheel odometry at the image stamp',
        )
        image = image_at(pixels, stamp)
        harness.send(image, wait_topic=f'{NS}/depth')
        map_from_base = matrix_of(node_tf(harness, image, 'odom')) @ sequence.wheel_poses[index]
        truth = np.linalg.inv(sequence.base_poses[0]) @ sequence.base_poses[index]
        np.testing.assert_allclose(map_from_base, truth, atol=1e-5)
    drift = np.linalg.inv(sequence.wheel_poses[-1]) @ truth
    assert np.linalg.norm(drift[:3, 3]) > 1e-3  # the wheels really were wrong


def test_an_automatic_reset_leaves_the_robot_where_it_was(harness_factory):
    harness, tree = robot(harness_factory)
    for index in range(3):
        harness.send(rgb_image(index), wait_topic=f'{NS}/depth')
    before = matrix_of(node_tf(harness, rgb_image(2), 'base_link'))
    jumped = rgb_image(3, stamp=Time(sec=50))  # a stamp 52 s back: a new stream, a new session
    harness.send(jumped, wait_topic=f'{NS}/depth')
    harness.wait(lambda: harness.logs('starting a new session at the last pose'), 'the reset')
    np.testing.assert_allclose(matrix_of(node_tf(harness, jumped, 'base_link')), before, atol=1e-9)
    moved = rgb_image(4, stamp=Time(sec=51))  # the new session's second frame: POSES[1]
    harness.send(moved, wait_topic=f'{NS}/depth')
    expected = before @ MOUNT @ model_pose(1) @ np.linalg.inv(MOUNT)
    np.testing.assert_allclose(matrix_of(node_tf(harness, moved, 'base_link')), expected, atol=1e-6)
    assert all(len(p) == 1 for p in tree.parents().values())


def test_the_node_re_anchors_and_keeps_one_world(harness_factory):
    poses = np.stack([rigid(rot_y(0.05 * i), [0.1 * i, 0.0, 0.2 * i]) for i in range(14)])
    model = SessionScaledStandIn(poses, lambda index, height, width: np.full((height, width), 2.0))
    harness = harness_factory(
        reconstructor=Reconstructor(model, image_width=WIDTH),
        tf_mode='camera',
        **{'anchor.max_frames': 5, 'anchor.overlap': 2},
    )
    for index in range(len(poses)):
        image = image_at(indexed_image(index, HEIGHT, WIDTH), 1_000_000_000 * (index + 1))
        published = matrix_of(harness.send(image).transforms[0])
        expected = np.linalg.inv(poses[0]) @ poses[index]
        expected[:3, 3] *= model.scales[0]  # the first session's units throughout
        np.testing.assert_allclose(published, expected, atol=1e-5)
    assert len(model.scales) >= 3  # the first session and at least two re-anchorings
    reanchors = str(len(model.scales) - 1)
    harness.diagnostics(lambda values: values['reanchors'] == reanchors)
