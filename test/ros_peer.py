"""A separate ROS 2 process for the middleware tests: publishes known messages.

Run by path (the repository root on PYTHONPATH); it publishes an Image, a PointCloud2
and a TFMessage twice a second until killed or after 30 s.
"""

import rclpy
from message_samples import sample_cloud, sample_image, sample_transform
from rclpy.qos import QoSDurabilityPolicy, QoSProfile
from sensor_msgs.msg import Image, PointCloud2
from tf2_msgs.msg import TFMessage

LATCHED = QoSProfile(depth=1, durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)


def main() -> None:
    rclpy.init()
    node = rclpy.create_node('vggt_ros_test_peer')
    publishers = [
        (node.create_publisher(Image, 'peer/image', LATCHED), sample_image()),
        (node.create_publisher(PointCloud2, 'peer/points', LATCHED), sample_cloud()),
        (
            node.create_publisher(TFMessage, 'peer/tf', LATCHED),
            TFMessage(transforms=[sample_transform()]),
        ),
    ]

    def publish_all() -> None:
        for publisher, message in publishers:
            publisher.publish(message)

    node.create_timer(0.5, publish_all)
    node.create_timer(30.0, lambda: rclpy.try_shutdown())
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
