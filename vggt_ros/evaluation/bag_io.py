"""Read and write bags through rosbags: rosbag2 (MCAP, sqlite3) and ROS 1 .bag, without ROS.

Reading goes through rosbags' AnyReader, so one code path serves every format; every failure
(missing path, unreadable file, missing topic, no messages) becomes a BagError that says what was
expected, because a traceback from deep inside a storage plugin tells a user nothing.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.interfaces import (
    Connection,
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag1 import Writer as Ros1Writer
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Ros2Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from scipy.spatial.transform import Rotation

from vggt_ros.images import IMAGE_ENCODINGS

STORAGES = ('mcap', 'sqlite3', 'rosbag1')
_ROS2_PLUGINS = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
_ROS2_FILE_SUFFIXES = ('.mcap', '.db3')
_EXPECTED = 'a rosbag2 folder (metadata.yaml with .mcap or .db3 files) or a ROS 1 .bag file'
# Topics whose publishers latch (static TF): players must replay them to late subscribers too.
LATCHED_TOPICS = frozenset({'/tf_static'})
_UNSET = QosTime(0, 0)  # the middleware default (no deadline, lifespan or lease)
_LATCHED_QOS = Qos(
    QosHistory.KEEP_LAST,
    1,
    QosReliability.RELIABLE,
    QosDurability.TRANSIENT_LOCAL,
    _UNSET,
    _UNSET,
    QosLiveliness.AUTOMATIC,
    _UNSET,
    False,
)


class BagError(RuntimeError):
    """A bag cannot be read or written, or lacks what the evaluation needs."""


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def resolve_bag_path(path: str | os.PathLike) -> Path:
    """The path rosbags opens: a ROS 1 .bag file, or the folder of a rosbag2 bag.

    A rosbag2 bag is a folder; users often pass the .mcap/.db3 inside it, so that is accepted too.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise BagError(f'bag not found: {path}. Expected {_EXPECTED}.')
    if path.is_file() and path.suffix in _ROS2_FILE_SUFFIXES:
        path = path.parent
    if path.is_dir() and not (path / 'metadata.yaml').is_file():
        raise BagError(
            f'{path} is a folder without metadata.yaml, so not a rosbag2 bag. Expected {_EXPECTED}.'
        )
    if path.is_file() and path.suffix != '.bag':
        raise BagError(f'{path} is not a bag. Expected {_EXPECTED}.')
    return path


@contextlib.contextmanager
def open_bag(path: str | os.PathLike) -> Iterator[AnyReader]:
    """Open a bag for reading; message types come from the bag itself (or ROS 2 defaults)."""
    path = resolve_bag_path(path)
    reader = AnyReader([path], default_typestore=get_typestore(Stores.LATEST))
    try:
        reader.open()
    except Exception as exc:  # noqa: BLE001 - every storage plugin fails differently on a corrupt file
        raise BagError(
            f'cannot read bag {path}: {_reason(exc)}. Is it {_EXPECTED}, and complete?'
        ) from exc
    try:
        yield reader
    finally:
        reader.close()


def topic_connections(reader: AnyReader, topic: str, msgtypes: Sequence[str]) -> list[Connection]:
    """The connections of `topic`, checked to exist, carry one of `msgtypes` and hold messages."""
    connections = [c for c in reader.connections if c.topic == topic]
    if not connections:
        available = (
            ', '.join(f'{c.topic} ({c.msgtype})' for c in reader.connections)
            or 'none: the bag is empty'
        )
        raise BagError(
            f'topic {topic} is not in bag {reader.paths[0]}. Topics in the bag: {available}.'
        )
    wrong = sorted({c.msgtype for c in connections} - set(msgtypes))
    if wrong:
        raise BagError(
            f'topic {topic} carries {", ".join(wrong)}; expected one of: {", ".join(msgtypes)}.'
        )
    if not sum(c.msgcount for c in connections):
        raise BagError(f'topic {topic} in bag {reader.paths[0]} has no messages (empty bag?).')
    return connections


def read_messages(
    reader: AnyReader, connections: Sequence[Connection]
) -> Iterator[tuple[str, int, object]]:
    """Yield (topic, bag time ns, deserialised message) in bag order; read failures become
    BagErrors."""
    stream = reader.messages(connections=connections)
    while True:
        try:
            item = next(stream, None)
            if item is None:
                return
            connection, timestamp, raw = item
            message = reader.deserialize(raw, connection.msgtype)
        except Exception as exc:  # noqa: BLE001 - a truncated or corrupt file can fail anywhere in rosbags
            raise BagError(
                f'bag {reader.paths[0]} is corrupt or truncated: {_reason(exc)}'
            ) from exc
        yield connection.topic, timestamp, message


def first_message(reader: AnyReader, topic: str, msgtype: str) -> object | None:
    """The first `msgtype` message on `topic`, or None where the bag has none."""
    connections = [c for c in reader.connections if c.topic == topic and c.msgtype == msgtype]
    if not connections:
        return None
    return next((message for _, _, message in read_messages(reader, connections)), None)


def stamp_ns(message: object) -> int:
    """Header stamp of a message in nanoseconds (the time the data was taken, not recorded)."""
    stamp = message.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class BagWriter:
    """Write messages built from numpy arrays to a rosbag2 (MCAP or sqlite3) or a ROS 1 bag."""

    def __init__(self, path: str | os.PathLike, storage: str = 'mcap') -> None:
        if storage not in STORAGES:
            raise BagError(f'storage must be one of {STORAGES}, got {storage!r}')
        path = Path(path)
        if path.exists():
            raise BagError(f'{path} exists already; bags are never overwritten')
        self.ros1 = storage == 'rosbag1'
        if self.ros1:
            self.typestore = get_typestore(Stores.ROS1_NOETIC)
            # Noetic's store lacks tf2_msgs; its definition is one line.
            self.typestore.register(
                get_types_from_msg(
                    'geometry_msgs/TransformStamped[] transforms', 'tf2_msgs/msg/TFMessage'
                )
            )
            self.writer = Ros1Writer(path)
            self.serialize = self.typestore.serialize_ros1
        else:
            self.typestore = get_typestore(Stores.ROS2_KILTED)
            self.writer = Ros2Writer(
                path, version=Ros2Writer.VERSION_LATEST, storage_plugin=_ROS2_PLUGINS[storage]
            )
            self.serialize = self.typestore.serialize_cdr
        self.types = self.typestore.types
        self.connections: dict[str, Connection] = {}
        self.sequence = 0

    def __enter__(self) -> BagWriter:
        self.writer.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.writer.close()

    def write(self, topic: str, stamp: int, message: object) -> None:
        """Write `message` on `topic` with bag time `stamp` (ns); topics are added on first use."""
        msgtype = message.__msgtype__
        if topic not in self.connections:
            self.connections[topic] = self._add_connection(topic, msgtype)
        self.writer.write(self.connections[topic], stamp, self.serialize(message, msgtype))

    def _add_connection(self, topic: str, msgtype: str) -> Connection:
        """A connection for `topic`, latched (ROS 1) or transient-local (ROS 2) if it latches."""
        if topic not in LATCHED_TOPICS:
            return self.writer.add_connection(topic, msgtype, typestore=self.typestore)
        if self.ros1:
            return self.writer.add_connection(topic, msgtype, typestore=self.typestore, latching=1)
        return self.writer.add_connection(
            topic, msgtype, typestore=self.typestore, offered_qos_profiles=[_LATCHED_QOS]
        )

    def header(self, stamp: int, frame_id: str) -> object:
        time = self.types['builtin_interfaces/msg/Time'](
            sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000
        )
        if self.ros1:
            self.sequence += 1
            return self.types['std_msgs/msg/Header'](
                seq=self.sequence, stamp=time, frame_id=frame_id
            )
        return self.types['std_msgs/msg/Header'](stamp=time, frame_id=frame_id)

    def image(self, stamp: int, frame_id: str, pixels: np.ndarray, encoding: str) -> object:
        """sensor_msgs/Image of HxW or HxWxC pixels, unpadded, in native byte order."""
        dtype, channels = IMAGE_ENCODINGS[encoding]
        pixels = np.ascontiguousarray(pixels, dtype=dtype)
        height, width = pixels.shape[:2]
        return self.types['sensor_msgs/msg/Image'](
            header=self.header(stamp, frame_id),
            height=height,
            width=width,
            encoding=encoding,
            is_bigendian=int(sys.byteorder == 'big'),
            step=width * channels * dtype.itemsize,
            data=pixels.reshape(-1).view(np.uint8),
        )

    def camera_info(
        self,
        stamp: int,
        frame_id: str,
        K: np.ndarray,
        width: int,
        height: int,
        distortion: Sequence[float] = (0.0,) * 5,
    ) -> object:
        """sensor_msgs/CameraInfo of a pinhole camera with intrinsics K (plumb_bob
        `distortion`: none by default)."""
        projection = np.zeros((3, 4))
        projection[:, :3] = K
        # ROS 1 spells the matrices in upper case, ROS 2 in lower case.
        matrices = {
            'd': np.asarray(distortion, float),
            'k': np.asarray(K, float).reshape(9),
            'r': np.eye(3).reshape(9),
            'p': projection.reshape(12),
        }
        roi = self.types['sensor_msgs/msg/RegionOfInterest'](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        )
        return self.types['sensor_msgs/msg/CameraInfo'](
            header=self.header(stamp, frame_id),
            height=height,
            width=width,
            distortion_model='plumb_bob',
            binning_x=0,
            binning_y=0,
            roi=roi,
            **{(name.upper() if self.ros1 else name): value for name, value in matrices.items()},
        )

    def tf(self, stamp: int, parent: str, child: str, parent_from_child: np.ndarray) -> object:
        """tf2_msgs/TFMessage holding the one transform parent -> child (a 4x4 matrix)."""
        return self.tf_tree(stamp, [(parent, child, parent_from_child)])

    def tf_tree(self, stamp: int, edges: Iterable[tuple[str, str, np.ndarray]]) -> object:
        """tf2_msgs/TFMessage of (parent, child, parent_from_child 4x4) transforms at one stamp.

        A static broadcaster sends all its transforms in one message: a latched topic replays only
        its last message to a late subscriber.
        """
        return self.types['tf2_msgs/msg/TFMessage'](
            transforms=[self._transform(stamp, *edge) for edge in edges]
        )

    def _transform(
        self, stamp: int, parent: str, child: str, parent_from_child: np.ndarray
    ) -> object:
        x, y, z = parent_from_child[:3, 3]
        rotation = Rotation.from_matrix(np.asarray(parent_from_child[:3, :3], dtype=np.float64))
        qx, qy, qz, qw = rotation.as_quat(canonical=True).tolist()  # scalar last, as ROS
        transform = self.types['geometry_msgs/msg/Transform'](
            translation=self.types['geometry_msgs/msg/Vector3'](x=x, y=y, z=z),
            rotation=self.types['geometry_msgs/msg/Quaternion'](x=qx, y=qy, z=qz, w=qw),
        )
        return self.types['geometry_msgs/msg/TransformStamped'](
            header=self.header(stamp, parent), child_frame_id=child, transform=transform
        )
