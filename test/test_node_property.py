"""Property: no sequence of frames, resets and parameter sets stops the node or corrupts it.

The real `stream_node` runs as its own process (tiny preset) for the whole module; hypothesis
drives it through random sequences of good frames, every class of bad frame, size changes, stamp
jumps (back, forward, repeated, zero), `~/reset` calls, runtime parameter sets (valid, invalid,
NaN, inf, integers for floats) and merging toggles. Each action is awaited until the node has
accounted for it, so none is dropped. After every sequence: a good frame still yields TF, depth
and a cloud in time, every frame is accounted for, no pose is NaN or inf, the process lives, and
each reset was logged once, with its cause.
"""

import math
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict

import pytest
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from node_harness import CAMERA, NS, ROOT, diagnostic_values, sized_image, stamp_of
from rcl_interfaces.msg import Log
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image, PointCloud2
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage

WIDTH = 70  # image_width: 42x70 frames reach the model as they are
SIZES = [(42, 70), (56, 70)]
SECOND = 1_000_000_000
OUTPUT_BOUND_S = 20.0  # a good frame's outputs arrive within this (tiny model, loaded machine)
RESEND_AFTER_S, RESENDS = 4.0, 5
RESET_CAUSES = ('reset requested', 'image size changed', 'time jumped backwards')
# (name, value, accepted)
PARAMETER_SETS = [
    ('conf_threshold', 2.5, True),
    ('conf_threshold', 5, True),  # an integer for a float
    ('conf_threshold', -1.0, False),
    ('conf_threshold', math.nan, False),
    ('scale', 2.0, True),
    ('scale', 1, True),
    ('scale', math.inf, False),
    ('scale', 0.0, False),
    ('scale', 'big', False),
    ('time_jump_tolerance', 0.2, True),
    ('time_jump_tolerance', 1, True),
    ('time_jump_tolerance', -math.inf, False),
    ('points.decimation', 2, True),
    ('points.decimation', 0, False),
    ('max_image_pixels', 100_000, True),
    ('max_image_pixels', 0, False),
    ('window_size', 8, False),  # read-only
]
BAD_FRAMES = ['empty', 'no rows', 'one pixel', 'strip', 'encoding', 'truncated', 'huge header']
STAMP_MOVES = ['forward', 'repeat', 'back a little', 'back a lot', 'zero']

actions = st.one_of(
    st.tuples(st.just('good'), st.sampled_from(SIZES)),
    st.tuples(st.just('bad'), st.sampled_from(BAD_FRAMES)),
    st.tuples(st.just('stamp'), st.sampled_from(STAMP_MOVES)),
    st.tuples(st.just('reset'), st.none()),
    st.tuples(st.just('parameter'), st.sampled_from(PARAMETER_SETS)),
    st.tuples(st.just('merging'), st.booleans()),
)


class NodeProcess:
    """The stream_node process, and a peer that publishes, listens and calls its services."""

    def __init__(self, context):
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        args = ['preset:=tiny', f'image_width:={WIDTH}', 'window_size:=3']
        # No robot here: the default tf_mode odom falls back to camera at the first frame.
        args += ['diagnostics_period:=0.05', 'conf_threshold:=0.0', 'tf_timeout:=0.0']
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'vggt_ros.node', '--ros-args']
            + [arg for pair in (('-p', a) for a in args) for arg in pair],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output = []
        threading.Thread(target=self._drain, daemon=True).start()
        self.peer = rclpy.create_node('vggt_property_peer', context=context)
        self.received = defaultdict(list)
        self._lock = threading.Lock()
        topics = {
            '/tf': TFMessage,
            f'{NS}/depth': Image,
            f'{NS}/points': PointCloud2,
            '/diagnostics': DiagnosticArray,
        }
        for topic, kind in topics.items():
            self.peer.create_subscription(kind, topic, self._keeper(topic), 10)
        self.peer.create_subscription(
            Log, '/rosout', self._keeper('/rosout'), QoSProfile(depth=1000)
        )
        self.images = self.peer.create_publisher(Image, 'image', 10)
        self.parameters = AsyncParameterClient(self.peer, 'vggt_stream')
        self.reset_client = self.peer.create_client(Trigger, f'{NS}/reset')
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.peer)
        self._spinner = threading.Thread(target=self.executor.spin, daemon=True)
        self._spinner.start()
        self.sent = 0
        self.wait(lambda: self.images.get_subscription_count() > 0, 'the node to subscribe', 90)
        self.wait(self.parameters.services_are_ready, 'parameter services')
        self.wait(self.reset_client.service_is_ready, 'the reset service')

    def _drain(self):
        for line in self.process.stdout:
            self.output.append(line)

    def _keeper(self, topic):
        def keep(message):
            with self._lock:
                self.received[topic].append(message)

        return keep

    def messages(self, topic):
        with self._lock:
            return list(self.received[topic])

    def wait(self, condition, what, timeout=OUTPUT_BOUND_S):
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.process.poll() is None, 'the node exited:\n' + ''.join(self.output)
            assert time.monotonic() < deadline, f'timed out waiting for {what}'
            time.sleep(0.01)

    def diagnostics(self):
        found = self.messages('/diagnostics')
        return diagnostic_values(found[-1]) if found else None

    def accounted(self, target):
        """Whether the node has received `target` frames and counted every one it received."""
        values = self.diagnostics()
        if values is None or int(values['received']) < target:
            return False
        parts = ('processed', 'dropped', 'skipped', 'failed')
        return int(values['received']) == sum(int(values[part]) for part in parts)

    def publish(self, message):
        """Publish and wait until the node has accounted for the frame. The subscription is best
        effort, so a frame the middleware lost on a loaded machine is sent again."""
        for _ in range(RESENDS):
            self.images.publish(message)
            try:
                self.wait(lambda: self.accounted(self.sent + 1), 'the frame', RESEND_AFTER_S)
            except AssertionError:
                assert self.process.poll() is None, 'the node exited:\n' + ''.join(self.output)
                continue
            self.sent = int(self.diagnostics()['received'])
            return
        raise AssertionError(f'the node did not account for a frame sent {RESENDS} times')

    def call(self, future):
        self.wait(future.done, 'a response')
        return future.result()

    def reset_logs(self):
        return [
            m.msg
            for m in self.messages('/rosout')
            if m.name == 'vggt_stream' and 'starting a new session' in m.msg
        ]

    def close(self):
        self.executor.shutdown()
        self._spinner.join(timeout=10)
        self.peer.destroy_node()
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture(scope='module')
def node():
    context = rclpy.Context()
    rclpy.init(context=context)
    process = NodeProcess(context)
    yield process
    process.close()
    rclpy.shutdown(context=context)


class Stream:
    """What the test sends: image sizes and stamps, moved by the actions."""

    def __init__(self, start_ns):
        self.last_ns = start_ns
        self.size = SIZES[0]
        self.seq = 0

    def image(self, stamp_ns, size=None, frame_id=CAMERA):
        self.seq += 1
        height, width = size or self.size
        message = sized_image(self.seq, height, width)
        message.header = Header(
            stamp=Time(sec=stamp_ns // SECOND, nanosec=stamp_ns % SECOND), frame_id=frame_id
        )
        return message

    def next_stamp(self, move):
        if move == 'forward':
            self.last_ns += SECOND // 10
        elif move == 'back a little':
            self.last_ns -= SECOND // 10
        elif move == 'back a lot':
            self.last_ns -= 3 * SECOND
        return 0 if move == 'zero' else self.last_ns


def bad_frame(stream, kind):
    stamp = stream.next_stamp('forward')
    if kind in ('empty', 'no rows', 'one pixel', 'strip'):
        size = {'empty': (0, 0), 'no rows': (0, 112), 'one pixel': (1, 1), 'strip': (4, 2000)}
        return stream.image(stamp, size[kind])
    message = stream.image(stamp)
    if kind == 'encoding':
        message.encoding = 'yuv444'
    elif kind == 'truncated':
        message.data = message.data[:50]
    else:  # a header claiming far more pixels than the data holds
        message.height, message.width = 100_000, 100_000
    return message


def act(node, stream, action):
    kind, arg = action
    if kind == 'good':
        stream.size = arg
        node.publish(stream.image(stream.next_stamp('forward')))
    elif kind == 'bad':
        node.publish(bad_frame(stream, arg))
    elif kind == 'stamp':
        node.publish(stream.image(stream.next_stamp(arg)))
    elif kind == 'reset':
        assert node.call(node.reset_client.call_async(Trigger.Request())).success
    else:
        name, value, accepted = arg if kind == 'parameter' else ('merging.enabled', arg, True)
        result = node.call(node.parameters.set_parameters([Parameter(name, value=value)]))
        assert result.results[0].successful == accepted, (name, value, result.results[0].reason)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=st.lists(actions, min_size=1, max_size=12))
def test_no_sequence_stops_or_corrupts_the_node(node, sequence):
    stream = Stream(start_ns=(1000 + 100 * node.sent) * SECOND)
    for action in sequence:
        act(node, stream, action)
    # A good frame, later than everything sent, still gives TF, depth and a cloud in time.
    probe = stream.image(stream.last_ns + 10 * SECOND, SIZES[0])
    node.publish(probe)
    for topic in ('/tf', f'{NS}/depth', f'{NS}/points'):
        node.wait(
            lambda topic=topic: any(
                stamp_of(m) == probe.header.stamp for m in node.messages(topic)
            ),
            f'{topic} for the probe frame',
        )
    for message in node.messages('/tf'):
        t, q = message.transforms[0].transform.translation, message.transforms[0].transform.rotation
        assert all(map(math.isfinite, (t.x, t.y, t.z, q.x, q.y, q.z, q.w)))
    assert node.process.poll() is None
    resets = int(node.diagnostics()['resets'])
    node.wait(lambda: len(node.reset_logs()) >= resets, 'the reset log lines')
    logs = node.reset_logs()
    assert len(logs) == resets
    assert all(any(cause in line for cause in RESET_CAUSES) for line in logs)
    assert 'Traceback' not in ''.join(node.output)
