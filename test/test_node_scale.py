"""Metric scale through real rclpy: a depth topic paired by stamp makes the outputs metric, said on
~/scale and /diagnostics; the stand-in's depth is known (node_harness.known_depth)."""

import numpy as np
import pytest
from node_harness import (
    HEIGHT,
    NS,
    POSES,
    WIDTH,
    diagnostic_values,
    known_depth,
    rgb_image,
    stamp_of,
)

from vggt_ros import images, messages
from vggt_ros.bench.node_run import stamp_ns

METRES_PER_UNIT = 2.5


def depth_message(image, encoding):
    """The metric depth a registered depth camera would send with `image`."""
    metres = METRES_PER_UNIT * known_depth(HEIGHT, WIDTH)
    pixels = metres if encoding == '32FC1' else np.round(metres * 1000).astype(np.uint16)
    return messages.array_to_image(pixels, encoding, image.header)


def test_a_depth_topic_makes_the_outputs_metric(harness_factory):
    harness = harness_factory(scale_source='depth')
    depths = harness.peer.create_publisher(type(rgb_image(0)), 'depth', 10)
    harness.wait(lambda: depths.get_subscription_count(), 'the node to subscribe to depth')
    for index in range(3):
        image = rgb_image(index)
        depths.publish(depth_message(image, ('32FC1', '16UC1')[index % 2]))
        stamp = stamp_ns(image.header.stamp)
        harness.wait(lambda stamp=stamp: harness.node._depths.nearest(stamp), 'the depth image')
        tf = harness.send(image, wait_topic='/tf')
        scale = diagnostic_values(harness.wait_for(f'{NS}/scale', image.header.stamp))
        depth = images.image_to_array(harness.wait_for(f'{NS}/depth', image.header.stamp))
        assert scale['metric'] == 'yes' and scale['scale source'] == 'depth'
        assert float(scale['scale']) == pytest.approx(METRES_PER_UNIT, rel=1e-3)
        np.testing.assert_allclose(depth, METRES_PER_UNIT * known_depth(HEIGHT, WIDTH), rtol=1e-3)
        translation = tf.transforms[0].transform.translation
        centre = METRES_PER_UNIT * np.array(POSES[index % len(POSES)][1])
        np.testing.assert_allclose([translation.x, translation.y, translation.z], centre, atol=1e-3)
    values = harness.diagnostics(lambda values: values.get('metric') == 'yes')
    assert values['scale source'] == 'depth'


def test_without_depth_the_outputs_say_they_are_not_metric(harness_factory):
    harness = harness_factory(scale_source='depth', scale=0.5)
    image = rgb_image(0)
    harness.send(image)
    scale = diagnostic_values(harness.wait_for(f'{NS}/scale', image.header.stamp))
    assert scale['metric'].startswith('no') and scale['scale'] == '0.5 (guess)'
    depth = images.image_to_array(harness.wait_for(f'{NS}/depth', image.header.stamp))
    np.testing.assert_allclose(depth, 0.5 * known_depth(HEIGHT, WIDTH), rtol=1e-6)


@pytest.mark.parametrize('tf_mode', ['odom', 'camera'])
def test_odometry_scale_needs_an_odometry_of_its_own(harness_factory, tf_mode):
    with pytest.raises(Exception, match=f'tf_mode {tf_mode} would publish an edge of that chain'):
        harness_factory(scale_source='odometry', tf_mode=tf_mode)


def test_wheel_odometry_makes_the_outputs_metric_in_map_mode(harness_factory):
    from test_node_tf import MOUNT, matrix_of, model_pose, node_tf, robot

    harness, tree = robot(harness_factory, tf_mode='map', scale_source='odometry')
    for index in range(3):
        image = rgb_image(index)
        camera = model_pose(index)
        camera[:3, 3] *= METRES_PER_UNIT  # where the camera really is, in metres
        wheels = MOUNT @ camera @ np.linalg.inv(MOUNT)  # odom -> base_link, exact wheels
        tree.give('odom', 'base_link', wheels, image.header.stamp)
        harness.send(image, wait_topic=f'{NS}/depth')
        if index < 2:  # no estimate yet: no correction of metric wheels by unscaled poses
            corrections = [
                m
                for m in harness.messages('/tf')
                if stamp_of(m) == image.header.stamp and m.transforms[0].child_frame_id == 'odom'
            ]
            assert not corrections
    harness.wait(lambda: harness.logs('waiting for the metric scale'), 'the wait said')
    # Exact wheels: the correction, once metric, is none.
    np.testing.assert_allclose(matrix_of(node_tf(harness, image, 'odom')), np.eye(4), atol=1e-6)
    scale = diagnostic_values(harness.wait_for(f'{NS}/scale', rgb_image(2).header.stamp))
    assert scale['metric'] == 'yes' and scale['scale source'] == 'odometry'
    assert float(scale['scale']) == pytest.approx(METRES_PER_UNIT, rel=1e-4)
    depth = images.image_to_array(harness.wait_for(f'{NS}/depth', rgb_image(2).header.stamp))
    np.testing.assert_allclose(depth, METRES_PER_UNIT * known_depth(HEIGHT, WIDTH), rtol=1e-4)
