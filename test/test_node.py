"""The stream node over the real ROS 2 middleware (never a mock of ROS).

Most tests run the node in-process, spun by an executor in a thread beside a peer node that
publishes images and listens, with a stand-in model whose poses and depths are known, so the
published TF, depth, CameraInfo and clouds can be checked against what the conventions imply.
Others run the tiny preset, in-process and as the real `stream_node` entry point.
"""

import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict

import numpy as np
import pytest
import rclpy
import torch
from builtin_interfaces.msg import Time
from node_harness import (
    CAMERA,
    FX,
    FY,
    HEIGHT,
    NS,
    POSES,
    ROOT,
    TIMEOUT,
    TOPICS,
    WIDTH,
    bad_images,
    expected_world_points,
    known_depth,
    known_source,
    rgb_image,
    rot_y,
    stamp_of,
    transform_matrix,
)
from PIL import Image as PILImage
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger

from vggt_ros import images, messages, params
from vggt_ros.body_motion import UNKNOWN_VARIANCE
from vggt_ros.checkpoints import load_model
from vggt_ros.node import StartupError, StreamNode
from vggt_ros.node_outputs import OUTPUTS
from vggt_ros.reconstructor import Reconstructor


def test_conventions_tf_depth_camera_info_and_clouds(harness_factory):
    harness = harness_factory(**{'map.period': 0.01, 'map.voxel_size': 0.001})
    for index in range(3):
        image = rgb_image(index)
        tf = harness.send(image)
        (transform,) = tf.transforms
        assert transform.header.frame_id == 'vggt_world' and transform.child_frame_id == CAMERA
        rotation, translation = transform_matrix(transform.transform)
        angle, centre = POSES[index]
        assert translation == pytest.approx(centre, abs=1e-5)  # frame 1: z = +1
        assert rotation == pytest.approx(rot_y(angle), abs=1e-5)

        depth = harness.wait_for(f'{NS}/depth', image.header.stamp)
        info = harness.wait_for(f'{NS}/depth/camera_info', image.header.stamp)
        # image_transport's pair of ~/depth (depth_image_proc, rviz2): the same message
        assert harness.wait_for(f'{NS}/camera_info', image.header.stamp) == info
        assert depth.encoding == '32FC1' and depth.header.frame_id == CAMERA
        assert (depth.height, depth.width) == (info.height, info.width) == (HEIGHT, WIDTH)
        assert images.image_to_array(depth) == pytest.approx(known_depth(HEIGHT, WIDTH))
        assert info.header.frame_id == CAMERA
        assert info.k == pytest.approx([FX, 0, WIDTH / 2, 0, FY, HEIGHT / 2, 0, 0, 1])

        cloud = harness.wait_for(f'{NS}/points', image.header.stamp)
        assert [f.name for f in cloud.fields] == ['x', 'y', 'z', 'rgb']
        assert (cloud.height, cloud.width, cloud.point_step) == (HEIGHT, WIDTH, 16)
        assert cloud.header.frame_id == CAMERA
        points, colours = messages.cloud_to_arrays(cloud)
        # Points carried into the world by the published TF land where the known depth puts them.
        in_world = points @ rotation.T + translation
        assert in_world == pytest.approx(expected_world_points(index), abs=1e-4)
        assert np.array_equal(colours, images.image_to_rgb(image))

        odometry = harness.wait_for(f'{NS}/odometry', image.header.stamp)
        position = odometry.pose.pose.position
        assert (odometry.header.frame_id, odometry.child_frame_id) == ('vggt_world', CAMERA)
        assert [position.x, position.y, position.z] == pytest.approx(centre, abs=1e-5)

    path = harness.wait_for(f'{NS}/path', image.header.stamp)
    assert len(path.poses) == 3 and path.header.frame_id == 'vggt_world'
    map_cloud = harness.wait_for(f'{NS}/map', image.header.stamp)
    map_points = messages.cloud_to_arrays(map_cloud)[0].reshape(-1, 3)
    seen = np.concatenate([expected_world_points(i).reshape(-1, 3) for i in range(3)])
    assert map_cloud.header.frame_id == 'vggt_world'
    assert HEIGHT * WIDTH <= len(map_points) <= len(seen)
    sample = map_points[np.random.default_rng(0).choice(len(map_points), 100)]
    assert all(np.abs(seen - point).max(axis=1).min() < 1e-4 for point in sample)


def test_every_output_has_its_publish_switch():
    assert {output.switch for output in OUTPUTS} == set(params.OUTPUTS)
    assert len({output.topic for output in OUTPUTS}) == len(OUTPUTS)


def test_ros_world_axes_put_forward_motion_on_x(harness_factory):
    harness = harness_factory(world_axes='ros', world_frame='odom', camera_frame='cam_opt')
    harness.send(rgb_image(0))
    (transform,) = harness.send(rgb_image(1)).transforms
    assert (transform.header.frame_id, transform.child_frame_id) == ('odom', 'cam_opt')
    rotation, translation = transform_matrix(transform.transform)
    assert translation == pytest.approx([1, 0, 0], abs=1e-5)
    # The camera still looks along world x: its optical z axis is the body x axis.
    assert rotation @ [0, 0, 1] == pytest.approx([1, 0, 0], abs=1e-5)


def test_runtime_parameters_are_validated_and_applied(harness_factory):
    harness = harness_factory()
    client = AsyncParameterClient(harness.peer, 'vggt_stream')
    assert client.wait_for_services(timeout_sec=TIMEOUT)

    def set_parameter(name, value):
        (result,) = harness.call(client.set_parameters([Parameter(name, value=value)])).results
        return result

    harness.send(rgb_image(0))
    assert set_parameter('conf_threshold', 20.0).successful  # the stand-in's confidence is 10
    rejected = [
        set_parameter('conf_threshold', -1.0),
        set_parameter('scale', 'big'),
        set_parameter('preset', 'tiny'),
        set_parameter('points.decimation', 0),
    ]
    assert not any(result.successful for result in rejected)
    assert 'at least' in rejected[0].reason and 'read-only' in rejected[2].reason
    assert set_parameter('points.decimation', 2).successful
    image = rgb_image(1)
    harness.send(image)
    assert np.isnan(
        images.image_to_array(harness.wait_for(f'{NS}/depth', image.header.stamp))
    ).all()
    cloud = harness.wait_for(f'{NS}/points', image.header.stamp)
    assert (cloud.height, cloud.width) == (HEIGHT // 2, WIDTH // 2)
    assert harness.node.get_parameter('conf_threshold').value == 20.0


def test_publish_switches_frame_stride_and_idle_outputs(harness_factory):
    listened = {topic: TOPICS[topic] for topic in ('/tf', f'{NS}/odometry', '/diagnostics')}
    harness = harness_factory(topics=listened)
    harness.send(rgb_image(0))
    assert len(harness.node._pipeline.map) == 0  # nobody listens on ~/map: nothing was accumulated
    harness.node.set_parameters(
        [Parameter('publish_tf', value=False), Parameter('frame_stride', value=2)]
    )
    harness.send(rgb_image(1), wait_topic=None)
    assert harness.diagnostics(lambda values: values['skipped'] == '1')['processed'] == '1'
    harness.send(rgb_image(2), wait_topic=f'{NS}/odometry')
    assert [stamp_of(m).sec for m in harness.messages('/tf')] == [100]


def test_services_and_parameters_answer_during_inference(harness_factory):
    entered, release = threading.Event(), threading.Event()

    def blocking_source(index, height, width):
        entered.set()
        release.wait(TIMEOUT)
        return known_source(index, height, width)

    harness = harness_factory(source=blocking_source)
    client = AsyncParameterClient(harness.peer, 'vggt_stream')
    reset = harness.peer.create_client(Trigger, f'{NS}/reset')
    assert client.wait_for_services(timeout_sec=TIMEOUT) and reset.wait_for_service(TIMEOUT)
    image = rgb_image(0)
    harness.send(image, wait_topic=None)
    harness.wait(entered.is_set, 'inference to start')
    assert (
        harness.call(client.set_parameters([Parameter('scale', value=2.0)])).results[0].successful
    )
    assert harness.call(reset.call_async(Trigger.Request())).success
    assert not release.is_set()  # both answered while the model was still busy
    release.set()
    harness.wait_for('/tf', image.header.stamp)


def test_reset_service_starts_a_new_world(harness_factory):
    harness = harness_factory()
    reset = harness.peer.create_client(Trigger, f'{NS}/reset')
    assert reset.wait_for_service(TIMEOUT)
    harness.send(rgb_image(0))
    (moved,) = harness.send(rgb_image(1)).transforms
    assert moved.transform.translation.z == pytest.approx(1.0)
    # The pose's covariance grew from the origin by the step claimed for the twist.
    odometry = harness.wait_for(f'{NS}/odometry', rgb_image(1).header.stamp)
    assert 0 < odometry.twist.covariance[0] < UNKNOWN_VARIANCE
    assert odometry.pose.covariance[0] > 0
    response = harness.call(reset.call_async(Trigger.Request()))
    assert response.success
    image = rgb_image(2)
    (transform,) = harness.send(image).transforms
    assert transform.transform.translation.z == pytest.approx(0.0)
    assert len(harness.wait_for(f'{NS}/path', image.header.stamp).poses) == 1
    # The jump back to the origin is no motion: the twist starts again unknown, the pose exact.
    odometry = harness.wait_for(f'{NS}/odometry', image.header.stamp)
    linear = odometry.twist.twist.linear
    assert (linear.x, linear.y, linear.z) == (0.0, 0.0, 0.0)
    assert odometry.twist.covariance[0] == UNKNOWN_VARIANCE and not any(odometry.pose.covariance)


def test_bad_images_are_skipped_and_publishing_continues(harness_factory):
    harness = harness_factory()
    for failures, bad in enumerate(bad_images(0), start=1):
        harness.send(bad, wait_topic=None)
        harness.diagnostics(lambda values, failures=failures: values['failed'] == str(failures))
    harness.send(rgb_image(3))
    values = harness.diagnostics(lambda values: values['processed'] == '1')
    assert values['failed'] == '2' and values['received'] == '3'
    assert values['window'].startswith('1/')  # the failed frames never entered the window
    assert values['failed: unsupported encoding'] == values['failed: corrupt image'] == '1'
    assert 'corrupt' in values['last error']


def test_a_model_failure_skips_the_frame_and_keeps_the_world(harness_factory):
    failures = []

    def failing_once(index, height, width):
        if index == 1 and not failures:
            failures.append(index)
            raise RuntimeError('out of memory, say')
        return known_source(index, height, width)

    harness = harness_factory(source=failing_once)
    harness.send(rgb_image(0))
    harness.send(rgb_image(1), wait_topic=None)
    values = harness.diagnostics(lambda values: values['failed'] == '1')
    assert values['resets'] == '0' and values['failed: model'] == '1'
    assert 'out of memory, say' in values['last error']
    # The step was undone: the next frame continues the world as if the failed one never came.
    image = rgb_image(2)
    assert harness.send(image).transforms[0].transform.translation.z == pytest.approx(1.0)
    assert len(harness.wait_for(f'{NS}/path', image.header.stamp).poses) == 2


def test_compressed_input(harness_factory):
    harness = harness_factory(image_transport='compressed')
    pixels = images.image_to_rgb(rgb_image(0))
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format='PNG')
    message = CompressedImage(header=rgb_image(0).header, format='png', data=buffer.getvalue())
    harness.send(message)
    cloud = harness.wait_for(f'{NS}/points', message.header.stamp)
    assert np.array_equal(messages.cloud_to_arrays(cloud)[1], pixels)
    garbage = CompressedImage(header=rgb_image(1).header, format='png', data=b'not a png')
    harness.send(garbage, wait_topic=None)
    harness.diagnostics(lambda values: values['failed'] == '1')
    harness.send(CompressedImage(header=rgb_image(2).header, format='png', data=buffer.getvalue()))


def test_size_change_and_time_going_backwards_continue_the_world(harness_factory):
    harness = harness_factory()
    harness.send(rgb_image(0))
    assert z_of(harness.send(rgb_image(1))) == pytest.approx(1.0)
    smaller = harness.send(rgb_image(2, height=HEIGHT - 14))  # a new session at the last pose
    assert z_of(smaller) == pytest.approx(1.0)
    assert z_of(harness.send(rgb_image(3, height=HEIGHT - 14))) == pytest.approx(2.0)
    image = rgb_image(4, height=HEIGHT - 14, stamp=Time(sec=1))
    assert z_of(harness.send(image)) == pytest.approx(2.0)
    assert harness.diagnostics(lambda values: values['processed'] == '5')['resets'] == '2'
    assert len(harness.wait_for(f'{NS}/path', image.header.stamp).poses) == 5  # kept


def z_of(tf):
    return tf.transforms[0].transform.translation.z


def test_fast_input_drops_frames_instead_of_queueing(harness_factory):
    def slow_source(index, height, width):
        time.sleep(0.03)
        return known_source(index, height, width)

    harness = harness_factory(source=slow_source)
    sent = 40
    for seq in range(sent):
        harness.send(rgb_image(seq), wait_topic=None)
        time.sleep(0.002)
    published_during_burst = len(harness.messages('/tf'))
    values = harness.diagnostics(
        lambda values: int(values['received']) == int(values['processed']) + int(values['dropped']),
        since=len(harness.messages('/diagnostics')),
    )
    harness.wait(lambda: len(harness.messages('/tf')) == int(values['processed']), 'every TF')
    received, dropped = int(values['received']), int(values['dropped'])
    assert received <= sent and dropped > 0
    # Not queued: once the burst is over at most the frame in hand, the one in the slot and one
    # still in the middleware remain to be published.
    assert len(harness.messages('/tf')) - published_during_burst <= 3
    assert values['failed'] == values['skipped'] == '0'


def test_tiny_model_toggles_merging_mid_stream(harness_factory):
    torch.manual_seed(0)
    reconstructor = Reconstructor(load_model(None, 'tiny'), image_width=WIDTH, window=3)
    harness = harness_factory(reconstructor=reconstructor, window_size=3, conf_threshold=0.0)
    client = AsyncParameterClient(harness.peer, 'vggt_stream')
    assert client.wait_for_services(timeout_sec=TIMEOUT)
    seq = 0
    for enabled in (False, True, False):
        result = harness.call(client.set_parameters([Parameter('merging.enabled', value=enabled)]))
        assert result.results[0].successful
        for _ in range(2):
            depth = harness.send(rgb_image(seq), wait_topic=f'{NS}/depth')
            seq += 1
            assert np.isfinite(images.image_to_array(depth)).any()
        assert (reconstructor.session.merging is not None) == enabled
        values = harness.diagnostics(lambda values, seq=seq: values['processed'] == str(seq))
        assert values['merging'] == ('on' if enabled else 'off')
    assert values['window'] == '3/3' and values['device'] == 'cpu'


def test_bad_parameters_and_checkpoints_fail_at_startup(context, tmp_path):
    with pytest.raises(StartupError, match='window_size'):
        StreamNode(context=context, parameter_overrides=[Parameter('window_size', value=1)])
    tiny_500 = [Parameter('preset', value='tiny'), Parameter('image_width', value=500)]
    with pytest.raises(StartupError, match='multiple of 14'):
        StreamNode(context=context, parameter_overrides=tiny_500)
    missing = str(tmp_path / 'missing.pth')
    with pytest.raises(StartupError, match='not found'):
        StreamNode(context=context, parameter_overrides=[Parameter('checkpoint', value=missing)])
    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_bytes(b'this is not a checkpoint')
    with pytest.raises(StartupError, match='cannot read checkpoint'):
        StreamNode(
            context=context, parameter_overrides=[Parameter('checkpoint', value=str(corrupt))]
        )


def node_process(*ros_args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, '-m', 'vggt_ros.node', '--ros-args', *ros_args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run_entry_point(context, preset):
    """The stream_node process on `preset` until every output has arrived; its log."""
    process = node_process(
        '-p',
        f'preset:={preset}',
        '-p',
        f'image_width:={WIDTH}',
        '-p',
        'window_size:=4',
        '-p',
        'diagnostics_period:=0.2',
    )
    try:
        peer = rclpy.create_node('vggt_test_peer', context=context)
        received = defaultdict(list)
        for topic, kind in TOPICS.items():
            if topic != f'{NS}/map':
                peer.create_subscription(kind, topic, received[topic].append, 10)
        images = peer.create_publisher(Image, 'image', 10)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(peer)
        deadline, seq = time.monotonic() + 60, 0
        while not all(received[t] for t in ('/tf', f'{NS}/depth', f'{NS}/points', '/diagnostics')):
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, (
                f'only got {sorted(t for t in received if received[t])}'
            )
            images.publish(rgb_image(seq))
            seq += 1
            executor.spin_once(timeout_sec=0.1)
        (transform,) = received['/tf'][0].transforms
        assert transform.child_frame_id == CAMERA and transform.header.stamp.sec >= 100
        assert received[f'{NS}/depth'][0].encoding == '32FC1'
        (status,) = received['/diagnostics'][-1].status
        assert status.hardware_id == 'cpu' and status.name == 'vggt_stream: stream'
        executor.shutdown()
        peer.destroy_node()
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert 'Traceback' not in output
    return output


def test_entry_point_runs_the_tiny_preset_and_stops_cleanly(context):
    assert 'RANDOM weights' in run_entry_point(context, 'tiny')


def test_entry_point_runs_the_small_preset_on_its_shipped_weights(context):
    output = run_entry_point(context, 'small')
    assert 'the weights shipped with vggt_ros' in output and 'RANDOM' not in output


def test_entry_point_fails_clearly_without_a_checkpoint():
    process = node_process('-p', 'checkpoint:=/nonexistent/weights.pth')
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 1
    assert 'checkpoint file not found: /nonexistent/weights.pth' in output
    assert 'Traceback' not in output


def test_two_cameras_in_namespaces_report_apart_on_diagnostics():
    """/diagnostics is shared: each node's status is named by its namespace, so an aggregator
    keeps the two cameras apart."""
    from diagnostic_msgs.msg import DiagnosticArray
    from standin_model import StandInModel

    context = rclpy.Context()
    rclpy.init(context=context)
    nodes = [
        StreamNode(
            reconstructor=Reconstructor(StandInModel(known_source), image_width=WIDTH),
            context=context,
            namespace=namespace,
            parameter_overrides=[Parameter('diagnostics_period', value=0.1)],
        )
        for namespace in ('left', 'right')
    ]
    peer = rclpy.create_node('peer', context=context)
    names = set()
    peer.create_subscription(
        DiagnosticArray, '/diagnostics', lambda m: names.update(s.name for s in m.status), 10
    )
    executor = SingleThreadedExecutor(context=context)
    for node in (*nodes, peer):
        executor.add_node(node)
    try:
        deadline = time.monotonic() + TIMEOUT
        while len(names) < 2 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        assert names == {'left/vggt_stream: stream', 'right/vggt_stream: stream'}
    finally:
        executor.shutdown()
        for node in (*nodes, peer):
            node.destroy_node()
        rclpy.shutdown(context=context)


def test_an_image_without_frame_id_is_placed_under_the_fallback_frame_with_a_warning(
    harness_factory,
):
    harness = harness_factory()
    image = rgb_image(0)
    image.header.frame_id = ''
    (transform,) = harness.send(image).transforms
    assert transform.child_frame_id == 'vggt_camera_optical_frame'
    harness.wait(lambda: harness.logs('has no frame_id'), 'the warning')
    assert 'set camera_frame' in harness.logs('has no frame_id')[0]


def test_rclpy_shutdown_with_the_node_alive_and_its_frame_failing_does_not_hang():
    """rclpy.shutdown() destroys the nodes still alive while holding the context's lock; an
    unexpected error ends the worker's frame meanwhile. The worker must not need that lock to
    decide to stop."""
    from standin_model import StandInModel

    entered, release = threading.Event(), threading.Event()

    def failing_slowly(*args):  # publishing the frame: slow, then an unexpected error
        entered.set()
        release.wait(TIMEOUT)
        raise RuntimeError('unexpected')

    context = rclpy.Context()
    rclpy.init(context=context)
    node = StreamNode(
        reconstructor=Reconstructor(StandInModel(known_source), image_width=WIDTH),
        context=context,
        parameter_overrides=[Parameter('tf_mode', value='camera')],
    )
    node._publishing.frame = failing_slowly
    peer = rclpy.create_node('peer', context=context)
    images = peer.create_publisher(Image, 'image', 10)
    executor = SingleThreadedExecutor(context=context)
    for each in (node, peer):
        executor.add_node(each)
    deadline = time.monotonic() + TIMEOUT
    while not entered.is_set() and time.monotonic() < deadline:
        images.publish(rgb_image(0))
        executor.spin_once(timeout_sec=0.05)
    assert entered.is_set()
    shutdown = threading.Thread(target=rclpy.shutdown, kwargs={'context': context}, daemon=True)
    shutdown.start()
    time.sleep(0.2)  # shutdown is now destroying the node, waiting for its worker
    release.set()
    shutdown.join(timeout=10)
    assert not shutdown.is_alive(), 'rclpy.shutdown() hung'
    executor.shutdown()
