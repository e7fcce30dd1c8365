"""A camera in a process of its own for test_large_images: rgb8 frames on /image.

    python large_image_publisher.py WIDTH HEIGHT {best_effort,reliable} FRAMES RATE_HZ

Prints `matched` once the node's subscription has matched, waits for `go` on stdin, publishes
FRAMES frames with increasing stamps at RATE_HZ, prints `sent FRAMES` and stays (a reliable
writer may still be resending) until stdin closes.
"""

import sys
import time

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import Image

# What camera drivers offer: sensor_data (best effort), or the default reliable depth 10.
QOS = {'best_effort': qos_profile_sensor_data, 'reliable': QoSProfile(depth=10)}
MATCH_TIMEOUT_S = 60.0


def main(width: int, height: int, reliability: str, frames: int, rate_hz: float) -> int:
    rclpy.init()
    node = rclpy.create_node('vggt_ros_test_camera')
    publisher = node.create_publisher(Image, 'image', QOS[reliability])
    deadline = time.monotonic() + MATCH_TIMEOUT_S
    while publisher.get_subscription_count() == 0:
        if time.monotonic() > deadline:
            return 1
        time.sleep(0.01)
    print('matched', flush=True)
    if sys.stdin.readline().strip() != 'go':
        return 1

    pixels = np.random.default_rng(0).integers(0, 256, height * width * 3, dtype=np.uint8)
    message = Image(height=height, width=width, encoding='rgb8', step=3 * width)
    message.header.frame_id = 'camera_optical_frame'
    message.data = pixels.tobytes()
    period_ns = round(1e9 / rate_hz)
    start = time.monotonic()
    for index in range(frames):
        message.header.stamp = Time(
            sec=100 + index * period_ns // 10**9, nanosec=index * period_ns % 10**9
        )
        publisher.publish(message)
        time.sleep(max(0.0, start + (index + 1) / rate_hz - time.monotonic()))
    print(f'sent {frames}', flush=True)
    sys.stdin.read()
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    width, height, reliability, frames, rate_hz = sys.argv[1:]
    sys.exit(main(int(width), int(height), reliability, int(frames), float(rate_hz)))
