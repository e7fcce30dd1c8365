"""ruff keeps the code to one style (the role ament_flake8 plays in ROS packages)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUFF = Path(sys.executable).with_name('ruff')
SOURCES = ['vggt_ros', 'test', 'launch', 'setup.py']


@pytest.fixture(scope='module')
def ruff():
    found = RUFF if RUFF.exists() else shutil.which('ruff')
    if not found:
        pytest.skip('ruff is not installed (make setup installs it)')
    return str(found)


@pytest.mark.parametrize('command', [['check'], ['format', '--check']])
def test_ruff(ruff, command):
    result = subprocess.run([ruff, *command, *SOURCES], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
