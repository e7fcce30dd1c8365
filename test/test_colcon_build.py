"""colcon builds and installs the package exactly as on a robot."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COLCON = Path(sys.executable).with_name('colcon')


@pytest.fixture(scope='module')
def install(tmp_path_factory):
    if not COLCON.exists():
        pytest.skip('colcon is not installed in this environment (make setup installs it)')
    work = tmp_path_factory.mktemp('colcon')
    result = subprocess.run(
        [
            str(COLCON),
            '--log-base',
            str(work / 'log'),
            'build',
            '--base-paths',
            str(REPO),
            '--build-base',
            str(work / 'build'),
            '--install-base',
            str(work / 'install'),
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'vggt_ros' in result.stdout and 'tf2_msgs' not in result.stdout, result.stdout
    return work / 'install' / 'vggt_ros'


def test_launch_config_and_marker_are_installed(install):
    share = install / 'share' / 'vggt_ros'
    for name in (
        'package.xml',
        'launch/stream.launch.py',
        'config/stream.yaml',
        'config/small.yaml',
        'config/stream.rviz',
        'config/fastdds.xml',
    ):
        assert (share / name).is_file(), f'{name} not installed'
    assert (install / 'share/ament_index/resource_index/packages/vggt_ros').is_file()


def test_stream_node_entry_point(install):
    script = install / 'lib' / 'vggt_ros' / 'stream_node'
    assert script.is_file() and os.access(script, os.X_OK)
    site_packages = next((install / 'lib').glob('python3*/site-packages'))
    assert (site_packages / 'vggt_ros' / 'node.py').is_file()
    assert (site_packages / 'vggt_ros' / 'weights' / 'small.safetensors').is_file()
    probe = (
        'from importlib.metadata import entry_points; '
        "(ep,) = entry_points(group='console_scripts', name='stream_node'); "
        'print(ep.value); print(callable(ep.load()))'
    )
    env = dict(os.environ, PYTHONPATH=str(site_packages))
    result = subprocess.run(
        [sys.executable, '-c', probe],
        cwd=install,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['vggt_ros.node:main', 'True']


def test_installed_code_finds_the_installed_config(install):
    site_packages = next((install / 'lib').glob('python3*/site-packages'))
    probe = 'from vggt_ros import config_files; print(config_files.config_file("small.yaml"))'
    prefixes = os.pathsep.join([str(install), os.environ.get('AMENT_PREFIX_PATH', '')])
    env = dict(os.environ, PYTHONPATH=str(site_packages), AMENT_PREFIX_PATH=prefixes)
    result = subprocess.run(
        [sys.executable, '-c', probe], cwd=install, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == install / 'share' / 'vggt_ros' / 'config' / 'small.yaml'
