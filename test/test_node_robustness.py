"""The node never stops working: bad frames, resets, stamps and parameters, through real rclpy.

Each test replays a sequence that once silenced the node, corrupted its state or wiped its world,
and checks what it publishes, counts and logs (on /rosout) afterwards.
"""

import struct
import zlib

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from node_harness import CAMERA, HEIGHT, NS, WIDTH, bad_images, rgb_image, sized_image, stamp_of
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from sensor_msgs.msg import CompressedImage
from std_srvs.srv import Trigger

from vggt_ros import messages
from vggt_ros.node import StartupError, StreamNode
from vggt_ros.node_parameters import NodeParameters

NEW_SESSION = 'starting a new session'


def z_of(tf):
    return tf.transforms[0].transform.translation.z


def bomb_png(side=20_000):
    """A PNG whose header claims side x side pixels, followed by garbage."""
    ihdr = struct.pack('>IIBBBBB', side, side, 8, 2, 0, 0, 0)
    chunk = struct.pack('>I', len(ihdr)) + b'IHDR' + ihdr
    chunk += struct.pack('>I', zlib.crc32(b'IHDR' + ihdr))
    return b'\x89PNG\r\n\x1a\n' + chunk + b'\x00' * 64


def reset_client(harness):
    client = harness.peer.create_client(Trigger, f'{NS}/reset')
    assert client.wait_for_service(timeout_sec=10)
    return lambda: harness.call(client.call_async(Trigger.Request())).success


def parameter_client(harness):
    client = AsyncParameterClient(harness.peer, 'vggt_stream')
    assert client.wait_for_services(timeout_sec=10)

    def set_parameter(name, value):
        return harness.call(client.set_parameters([Parameter(name, value=value)])).results[0]

    return set_parameter


def test_a_bad_first_frame_leaves_the_node_streaming(harness_factory):
    harness = harness_factory()
    harness.send(sized_image(0, 0, 0), wait_topic=None)
    harness.diagnostics(lambda values: values['failed'] == '1')
    for seq in (1, 2, 3):
        harness.send(rgb_image(seq))
    values = harness.diagnostics(lambda values: values['processed'] == '3')
    assert values['resets'] == '0'


@pytest.mark.parametrize('size', [(0, 0), (0, 112), (1, 1), (4, 2000)])
def test_one_bad_frame_never_resets_the_world(harness_factory, size):
    harness = harness_factory()
    harness.send(rgb_image(0))
    harness.send(rgb_image(1))
    harness.send(sized_image(2, *size), wait_topic=None)
    values = harness.diagnostics(lambda values: values['failed'] == '1')
    assert values['resets'] == '0'
    # The world goes on: the next frame is the stream's third, with the path intact.
    image = rgb_image(3)
    assert z_of(harness.send(image)) == pytest.approx(1.5)
    assert len(harness.wait_for(f'{NS}/path', image.header.stamp).poses) == 3
    assert not harness.logs(NEW_SESSION)


def test_every_reset_cause_after_a_requested_reset_works_and_is_logged_once(harness_factory):
    harness = harness_factory()
    reset = reset_client(harness)
    harness.send(rgb_image(0))
    assert reset()
    assert z_of(harness.send(rgb_image(1))) == pytest.approx(0.0)  # requested: the origin
    assert z_of(harness.send(rgb_image(2))) == pytest.approx(1.0)
    # Automatic resets start a new session at the last pose: no jump, then on from there.
    assert z_of(harness.send(rgb_image(3, height=HEIGHT - 14))) == pytest.approx(1.0)  # size
    assert z_of(harness.send(rgb_image(4, height=HEIGHT - 14))) == pytest.approx(2.0)
    looped = rgb_image(5, height=HEIGHT - 14, stamp=Time(sec=50))
    assert z_of(harness.send(looped)) == pytest.approx(2.0)  # time went back 54 s
    assert reset()  # right after an automatic reset
    assert z_of(harness.send(rgb_image(6, height=HEIGHT - 14))) == pytest.approx(0.0)
    assert z_of(harness.send(rgb_image(7, height=HEIGHT - 14))) == pytest.approx(1.0)
    values = harness.diagnostics(lambda values: values['processed'] == '8')
    assert values['resets'] == '4' and values['failed'] == '0'
    harness.wait(lambda: len(harness.logs(NEW_SESSION)) == 4, 'four reset log lines')
    causes = harness.logs(NEW_SESSION)
    assert ['requested' in causes[0], 'size changed' in causes[1]] == [True, True]
    assert 'backwards by 54.' in causes[2] and 'requested' in causes[3]


def test_non_finite_parameters_are_refused_at_runtime_and_at_startup(harness_factory, context):
    harness = harness_factory()
    set_parameter = parameter_client(harness)
    for name in ('scale', 'conf_threshold', 'time_jump_tolerance'):
        for value in (float('nan'), float('inf'), float('-inf')):
            result = set_parameter(name, value)
            assert not result.successful and 'finite' in result.reason
    harness.send(rgb_image(0))
    tf = harness.send(rgb_image(1))
    assert np.isfinite(z_of(tf)) and z_of(tf) == pytest.approx(1.0)
    with pytest.raises(StartupError, match='finite'):
        StreamNode(context=context, parameter_overrides=[Parameter('scale', value=float('nan'))])


def test_integers_are_taken_for_float_parameters(harness_factory):
    harness = harness_factory(scale=2, conf_threshold=5)
    harness.send(rgb_image(0))
    assert z_of(harness.send(rgb_image(1))) == pytest.approx(2.0)
    set_parameter = parameter_client(harness)
    assert set_parameter('scale', 3).successful
    assert harness.node.get_parameter('scale').value == 3.0
    assert type(harness.node.get_parameter('scale').value) is float
    assert z_of(harness.send(rgb_image(2))) == pytest.approx(1.5 * 3)


class HumbleNode(Node):
    """A real node with rclpy's parameter API as Humble has it: no pre- or post-set callbacks."""

    def __getattribute__(self, name):
        if name in ('add_pre_set_parameters_callback', 'add_post_set_parameters_callback'):
            raise AttributeError(name)
        return super().__getattribute__(name)


def test_parameters_are_checked_and_applied_with_humbles_rclpy(context):
    node = HumbleNode('humble_parameters', context=context)
    try:
        parameters = NodeParameters(node)
        assert node.set_parameters([Parameter('conf_threshold', value=20.0)])[0].successful
        assert parameters.values['conf_threshold'] == 20.0
        refused = node.set_parameters([Parameter('conf_threshold', value=-1.0)])[0]
        assert not refused.successful and 'at least' in refused.reason
        assert parameters.values['conf_threshold'] == 20.0  # nothing half-applied
        assert node.set_parameters([Parameter('scale', value=3)])[0].successful
        assert parameters.values['scale'] == 3.0 and type(parameters.values['scale']) is float
    finally:
        node.destroy_node()


def test_parameter_checks_come_before_the_model(context, tmp_path):
    missing = Parameter('checkpoint', value=str(tmp_path / 'missing.pth'))
    with pytest.raises(StartupError, match='image_width'):
        StreamNode(
            context=context, parameter_overrides=[missing, Parameter('image_width', value=14)]
        )
    same = [missing, Parameter('camera_frame', value='vggt_world')]
    with pytest.raises(StartupError, match='its own parent'):
        StreamNode(context=context, parameter_overrides=same)


def test_an_image_in_the_world_frame_is_refused_not_published(harness_factory):
    harness = harness_factory()
    image = rgb_image(0)
    image.header.frame_id = 'vggt_world'
    harness.send(image, wait_topic=None)
    values = harness.diagnostics(lambda values: values['failed'] == '1')
    assert values['failed: frame id'] == '1' and 'world_frame' in values['last error']
    harness.send(rgb_image(1))
    assert all(m.transforms[0].child_frame_id == CAMERA for m in harness.messages('/tf'))


def test_repeated_late_and_zero_stamps(harness_factory):
    harness = harness_factory()
    first = rgb_image(0)
    harness.send(first)
    harness.send(rgb_image(1))
    repeated = rgb_image(1)
    late = rgb_image(1, stamp=Time(sec=101, nanosec=0))  # 1 ns before frame 1
    for skipped, message in enumerate((repeated, late), start=1):
        harness.send(message, wait_topic=None)  # one at a time: none replaces another
        values = harness.diagnostics(lambda values, n=skipped: values['skipped'] == str(n))
    assert values['skipped: repeated stamp'] == values['skipped: out-of-order stamp'] == '1'
    assert values['resets'] == '0'
    stamps = [stamp_of(m) for m in harness.messages('/tf')]
    assert stamps == [first.header.stamp, repeated.header.stamp]  # never twice for one stamp
    for count, seq in enumerate((2, 3), start=3):
        harness.send(rgb_image(seq, stamp=Time()), wait_topic=None)
        harness.wait(lambda n=count: len(harness.messages('/tf')) == n, 'an unstamped TF')
    unstamped = [m.transforms[0].header.stamp for m in harness.messages('/tf')[2:]]
    assert all(stamp.sec > 0 for stamp in unstamped) and unstamped[0] != unstamped[1]
    assert len(harness.logs('stamped 0')) == 1


def test_distinct_errors_are_each_logged_and_repeats_held_back(harness_factory):
    harness = harness_factory()
    unsupported, truncated = bad_images(0, keep_bytes=10)
    for count, message in enumerate((unsupported, truncated, unsupported), start=1):
        harness.send(message, wait_topic=None)
        harness.diagnostics(lambda values, count=count: values['failed'] == str(count))
    harness.wait(lambda: len(harness.logs('skipping an image')) == 2, 'both kinds logged')
    assert len(harness.logs('yuv444')) == 1  # the repeat within the throttle period: held back


def test_a_decompression_bomb_is_refused_with_one_line(harness_factory):
    harness = harness_factory(image_transport='compressed', max_image_pixels=40_000_000)
    bomb = CompressedImage(header=rgb_image(0).header, format='png', data=bomb_png())
    harness.send(bomb, wait_topic=None)
    values = harness.diagnostics(lambda values: values['failed'] == '1')
    assert values['failed: image too large'] == '1'
    harness.wait(lambda: harness.logs('skipping an image'), 'the log line')
    (line,) = harness.logs('skipping an image')
    assert '20000' in line and 'Traceback' not in line


def test_a_16_bit_png_reaches_the_model_scaled_not_saturated(harness_factory):
    import cv2

    harness = harness_factory(image_transport='compressed')
    levels = np.linspace(0, 60_000, HEIGHT * WIDTH).reshape(HEIGHT, WIDTH).astype(np.uint16)
    png = cv2.imencode('.png', levels)[1].tobytes()
    header = rgb_image(0).header
    message = CompressedImage(header=header, format='mono16; png compressed mono16', data=png)
    harness.send(message)
    colours = messages.cloud_to_arrays(harness.wait_for(f'{NS}/points', header.stamp))[1]
    assert colours.max() < 255 and len(np.unique(colours)) > 200
    assert np.array_equal(colours[..., 0], colours[..., 2])  # grey
