"""The node's parameters on disk, for code that runs outside the node: the package's config/
files wherever it is installed, a ROS 2 params file read as ROS reads it, and the node's inputs
as the launch file remaps them.
"""

from __future__ import annotations

import os
import posixpath
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from vggt_ros.params import NODE_NAME


def config_file(name: str) -> Path:
    """A file of the package's config/: the checkout's (the venv's editable install, tests), else
    where pip puts the package's data files (share/vggt_ros under the environment's prefix),
    else the ament index's share directory (a colcon install, AMENT_PREFIX_PATH set)."""
    for config in (
        Path(__file__).resolve().parents[1] / 'config',
        Path(sys.prefix) / 'share' / 'vggt_ros' / 'config',
    ):
        if (config / name).is_file():
            return config / name
    from ament_index_python.packages import get_package_share_directory  # noqa: PLC0415

    return Path(get_package_share_directory('vggt_ros')) / 'config' / name


FASTDDS_PROFILE_VARIABLES = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')


def transport_note(rmw: str, environ: Mapping[str, str]) -> str | None:
    """What to say at startup where Fast DDS runs without a profile: its default transports
    lose camera-sized samples (README, "Camera-sized images need a Fast DDS profile")."""
    if not rmw.startswith('rmw_fastrtps') or any(environ.get(v) for v in FASTDDS_PROFILE_VARIABLES):
        return None
    return (
        'Fast DDS runs without a profile: its default transports lose camera-sized images, '
        "in this node's outputs and above all in the camera driver's; set "
        "FASTDDS_DEFAULT_PROFILES_FILE (FASTRTPS_ on Humble and Jazzy) to the package's "
        'config/fastdds.xml for both'
    )


def camera_info_sibling(image: str) -> str:
    """Where camera drivers publish an image topic's CameraInfo: `camera_info` beside it (beside
    the raw image, for its image_transport `/compressed` topic)."""
    raw = image.removesuffix('/compressed')
    return posixpath.join(posixpath.dirname(raw), 'camera_info')


def input_remappings(image: str, depth: str = '', camera_info: str = '') -> list[tuple[str, str]]:
    """The node's inputs remapped to the topics the launch file's arguments name: the image and
    its /compressed sibling, the camera's CameraInfo (by default the image's camera_info
    sibling, where camera drivers publish it) and the depth image where one is named."""
    info = camera_info or camera_info_sibling(image)
    remappings = [
        ('image', image),
        ('image/compressed', f'{image}/compressed'),
        ('camera_info', info),
    ]
    return remappings + ([('depth', depth)] if depth else [])


def rviz_config(namespace: str = '') -> Path:
    """config/stream.rviz, whose displays name the node's topics absolutely; under a `namespace`
    a copy of it with the topics moved into that namespace, one file per namespace in the
    temporary directory (each launch rewrites it whole, so launches never leave more behind)."""
    layout = config_file('stream.rviz')
    namespace = namespace.strip('/')
    if not namespace:
        return layout
    text = layout.read_text().replace(f'Value: /{NODE_NAME}/', f'Value: /{namespace}/{NODE_NAME}/')
    target = Path(tempfile.gettempdir()) / f'vggt_ros_{namespace.replace("/", "_")}.rviz'
    with tempfile.NamedTemporaryFile('w', dir=target.parent, suffix='.rviz', delete=False) as copy:
        copy.write(text)
    os.replace(copy.name, target)  # whole: an rviz2 starting meanwhile reads the old or the new
    return target


def read_params_file(path: str | os.PathLike, node: str = NODE_NAME) -> dict[str, Any]:
    """The node's parameters from a ROS 2 params file: its '/**' section and its own (by name,
    with or without a leading slash), nested keys joined with dots as ROS does."""
    try:
        document = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f'cannot read params file {path}: {error}') from error
    if not isinstance(document, dict):
        raise ValueError(f'params file {path} holds no parameters')
    values: dict[str, Any] = {}
    for section in ('/**', node, f'/{node}'):
        parameters = (document.get(section) or {}).get('ros__parameters', {})
        values.update(_flatten(parameters))
    return values


def _flatten(tree: dict[str, Any], prefix: str = '') -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f'{prefix}{key}.'))
        else:
            flat[f'{prefix}{key}'] = value
    return flat
