"""Camera-sized images from another process reach the node, best effort and reliable.

With Fast DDS's built-in transports a sample larger than its publisher's 512 KiB shared-memory
segment overwrote its own fragments, so no 1280x720 rgb8 frame (2.8 MB) arrived at best effort.
config/fastdds.xml enlarges the transports; the venv's Python points Fast DDS at it (a .pth
file written by tools/setup_env.sh), and the camera process, a venv Python too, gets it as well.
"""

import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from node_harness import diagnostic_values

TEST_DIR = Path(__file__).parent
PROFILE = TEST_DIR.parent / 'config' / 'fastdds.xml'
PROFILE_VARIABLES = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')
FRAMES, RATE_HZ = 30, 30.0
# The node keeps only the newest frame, so best effort may lose one now and then on a loaded
# machine; without the profile it received none of these.
MIN_RECEIVED = 0.8
SETTLE_S = 3.0  # after the last frame, for reliable resends and the last diagnostics
LINE_TIMEOUT_S = 60.0


class Camera:
    """large_image_publisher.py in its own process, with this process's environment."""

    def __init__(self, width, height, reliability):
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(TEST_DIR / 'large_image_publisher.py'),
                str(width),
                str(height),
                reliability,
                str(FRAMES),
                str(RATE_HZ),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def expect(self, line):
        got = self.lines.get(timeout=LINE_TIMEOUT_S)
        assert got == line, f'the camera said {got!r}, not {line!r} (exit {self.process.poll()})'

    def say(self, line):
        self.process.stdin.write(line + '\n')
        self.process.stdin.flush()

    def close(self):
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def camera_factory():
    cameras = []

    def make(*args):
        cameras.append(Camera(*args))
        return cameras[-1]

    yield make
    for camera in cameras:
        camera.close()


PARTS = ('processed', 'dropped', 'skipped', 'failed')


def counts(harness, since):
    """The newest /diagnostics counts from message `since` on, once each frame the node received
    is accounted for (processed, dropped, skipped or failed); None before."""
    found = harness.messages('/diagnostics')[since:]
    if not found:
        return None
    values = {
        key: int(value)
        for key, value in diagnostic_values(found[-1]).items()
        if key in ('received', *PARTS)
    }
    return values if values['received'] == sum(values[part] for part in PARTS) else None


@pytest.mark.parametrize(
    ('width', 'height', 'reliability', 'image_qos'),
    [
        (640, 480, 'best_effort', 'sensor_data'),
        (1280, 720, 'best_effort', 'sensor_data'),
        (1280, 720, 'reliable', 'sensor_data'),
        (1280, 720, 'reliable', 'reliable'),
        (1920, 1080, 'best_effort', 'sensor_data'),
    ],
)
def test_camera_frames_from_another_process_reach_the_node(
    harness_factory, camera_factory, width, height, reliability, image_qos
):
    harness = harness_factory(topics={'/diagnostics': DiagnosticArray}, image_qos=image_qos)
    camera = camera_factory(width, height, reliability)
    camera.expect('matched')
    # Both ends matched before the first frame: none is lost to discovery. The harness's own
    # peer publishes on image too, so the camera is the second publisher.
    (subscription,) = [s for s in harness.node.subscriptions if s.topic_name == '/image']
    harness.wait(lambda: subscription.get_publisher_count() >= 2, 'the node to match the camera')
    camera.say('go')
    camera.expect(f'sent {FRAMES}')

    since = len(harness.messages('/diagnostics'))
    try:
        harness.wait(
            lambda: (counts(harness, since) or {}).get('received') == FRAMES,
            'every frame',
            SETTLE_S,
        )
    except TimeoutError:
        pass  # judged below, with what did arrive
    harness.wait(lambda: counts(harness, since), 'the frames accounted for')
    values = counts(harness, since)
    assert values['received'] >= MIN_RECEIVED * FRAMES, (
        f'{values["received"]} of {FRAMES} {width}x{height} frames reached the node ({values}); '
        f'profile: {os.environ.get(PROFILE_VARIABLES[0])!r}'
    )
    assert values['processed'] > 0, values


def test_the_venv_points_fast_dds_at_the_profile_unless_the_user_chose_one():
    def profiles(**env):
        base = {k: v for k, v in os.environ.items() if k not in PROFILE_VARIABLES}
        code = f'import os; print(*[os.environ.get(name) for name in {PROFILE_VARIABLES!r}])'
        done = subprocess.run(
            [sys.executable, '-c', code],
            env={**base, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout.split()

    # One variable, the one the distribution's Fast DDS reads (FASTRTPS_ before Fast DDS 3).
    assert sorted(profiles()) == sorted(['None', str(PROFILE)]), 'run make setup (setup_env.sh)'
    assert profiles(FASTDDS_DEFAULT_PROFILES_FILE='/mine.xml') == ['/mine.xml', 'None']
    assert profiles(FASTRTPS_DEFAULT_PROFILES_FILE='/mine.xml') == ['None', '/mine.xml']
