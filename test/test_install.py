"""`make setup` installs the package into its venv: console scripts, imports from anywhere."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import vggt_ros

BIN = Path(sys.executable).parent
ROOT = Path(__file__).parent.parent
SCRIPTS = ('vggt-eval', 'vggt-synth', 'vggt-bench', 'vggt-train', 'stream_node')


def outside_the_checkout(tmp_path):
    """An environment and folder in which only the installed package can be found."""
    env = {key: value for key, value in os.environ.items() if key != 'PYTHONPATH'}
    return {'cwd': tmp_path, 'env': env, 'capture_output': True, 'text': True, 'timeout': 120}


@pytest.mark.parametrize('script', SCRIPTS)
def test_console_scripts_are_in_the_venv(script):
    assert (BIN / script).is_file(), f'{script} is not in {BIN}: run make setup'


def test_vggt_eval_help_runs_from_anywhere(tmp_path):
    done = subprocess.run([str(BIN / 'vggt-eval'), '--help'], **outside_the_checkout(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith('usage: vggt-eval')


def test_the_package_imports_from_outside_the_checkout(tmp_path):
    code = 'import vggt_ros.node, vggt_ros.pipeline; print(vggt_ros.__file__)'
    done = subprocess.run([sys.executable, '-c', code], **outside_the_checkout(tmp_path))
    assert done.returncode == 0, done.stderr
    # Editable: the installed package is this checkout, not a copy.
    assert Path(done.stdout.strip()) == Path(vggt_ros.__file__)
    assert Path(vggt_ros.__file__).parent.parent == ROOT
