"""The camera's own CameraInfo through real rclpy: registered depth at the camera image's
resolution and frame, with that CameraInfo, as depth_image_proc/point_cloud_xyzrgb consumes them;
and the calibration as a check on what the model sees."""

import numpy as np
from node_harness import CAMERA, FX, HEIGHT, NS, WIDTH, known_depth, sized_image
from sensor_msgs.msg import CameraInfo

from vggt_ros import images


def camera_info(image, width, height):
    info = CameraInfo(header=image.header, width=width, height=height, distortion_model='plumb_bob')
    info.k = [300.0, 0.0, width / 2 - 0.5, 0.0, 310.0, height / 2 + 0.25, 0.0, 0.0, 1.0]
    info.d = [0.1, -0.05, 0.0, 0.0, 0.0]
    return info


def test_depth_at_the_input_resolution_with_the_cameras_calibration(harness_factory):
    harness = harness_factory(**{'depth.registered': True})
    infos = harness.peer.create_publisher(CameraInfo, 'camera_info', 10)
    harness.wait(lambda: infos.get_subscription_count(), 'the node to subscribe to camera_info')
    image = sized_image(0, 2 * HEIGHT, 2 * WIDTH)  # twice the model's size: no crop
    sent = camera_info(image, 2 * WIDTH, 2 * HEIGHT)
    infos.publish(sent)
    harness.wait(lambda: harness.node._camera_infos.latest(), 'the camera info')
    harness.send(image, wait_topic=f'{NS}/depth')
    registered = harness.wait_for(f'{NS}/depth_registered/image', image.header.stamp)
    assert registered.header.frame_id == CAMERA
    depth = images.image_to_array(registered)
    # By hand: each model pixel covers a 2x2 block of the input.
    expected = np.repeat(np.repeat(known_depth(HEIGHT, WIDTH), 2, axis=0), 2, axis=1)
    np.testing.assert_allclose(depth, expected, rtol=1e-6)
    info = harness.wait_for(f'{NS}/depth_registered/camera_info', image.header.stamp)
    assert (info.width, info.height, info.header.frame_id) == (2 * WIDTH, 2 * HEIGHT, CAMERA)
    assert list(info.k) == list(sent.k) and list(info.d) == list(sent.d)
    assert info.distortion_model == 'plumb_bob'


def test_a_calibration_for_another_resolution_is_not_passed_on(harness_factory):
    harness = harness_factory(**{'depth.registered': True})
    infos = harness.peer.create_publisher(CameraInfo, 'camera_info', 10)
    harness.wait(lambda: infos.get_subscription_count(), 'the node to subscribe to camera_info')
    image = sized_image(1, HEIGHT, WIDTH)
    infos.publish(camera_info(image, 640, 480))
    harness.wait(lambda: harness.node._camera_infos.latest(), 'the camera info')
    harness.send(image, wait_topic=f'{NS}/depth_registered/image')
    harness.send(sized_image(2, HEIGHT, WIDTH), wait_topic=f'{NS}/depth_registered/image')
    assert not harness.messages(f'{NS}/depth_registered/camera_info')


def test_a_distorted_camera_is_said_once_and_the_focal_length_checked(harness_factory):
    harness = harness_factory()  # depth.registered off: the calibration is read all the same
    infos = harness.peer.create_publisher(CameraInfo, 'camera_info', 10)
    harness.wait(lambda: infos.get_subscription_count(), 'the node to subscribe to camera_info')
    for seq in range(3):
        image = sized_image(seq, 2 * HEIGHT, 2 * WIDTH)
        infos.publish(camera_info(image, 2 * WIDTH, 2 * HEIGHT))
        harness.wait(lambda: harness.node._camera_infos.latest(), 'the camera info')
        harness.send(image, wait_topic=f'{NS}/depth')
    (warning,) = harness.logs('distorted')
    assert 'plumb_bob: 0.1, -0.05, 0, 0, 0' in warning and 'image_rect' in warning
    # The calibration's 300 px over the input's width is 150 px in the model's.
    focal = harness.diagnostics(lambda values: 'calibrated' in values.get('focal', ''))['focal']
    assert focal == f'{FX:.1f} px predicted, 150.0 px calibrated ({FX / 150 - 1:+.0%})'


def test_a_pinhole_camera_is_not_warned_about(harness_factory):
    harness = harness_factory()
    infos = harness.peer.create_publisher(CameraInfo, 'camera_info', 10)
    harness.wait(lambda: infos.get_subscription_count(), 'the node to subscribe to camera_info')
    image = sized_image(0, HEIGHT, WIDTH)
    info = camera_info(image, WIDTH, HEIGHT)
    info.d = [0.0] * 5
    infos.publish(info)
    harness.wait(lambda: harness.node._camera_infos.latest(), 'the camera info')
    harness.send(image, wait_topic=f'{NS}/depth')
    harness.diagnostics(lambda values: 'calibrated' in values.get('focal', ''))
    assert not harness.logs('distorted')
