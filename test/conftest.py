"""Test isolation for the real ROS 2 middleware.

Every test run gets its own ROS domain and localhost-only discovery, so parallel runs
on one machine (or CI beside a developer) never see each other's topics. Set before
any test imports rclpy; child processes inherit it.
"""

import os
import tempfile

import pytest
import torch

from vggt_ros.model.synthetic_weights import synthetic_model

os.environ['ROS_DOMAIN_ID'] = str(1 + os.getpid() % 100)
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('ROS_LOG_DIR', tempfile.mkdtemp(prefix='vggt_ros_test_logs_'))
os.environ.setdefault('HF_HUB_OFFLINE', '1')


@pytest.fixture(scope='module')
def single_torch_thread():
    """Tiny-model steps are quickest on one thread, and that leaves a core to the executor."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='session')
def tiny_model():
    """The tiny preset with recipe weights: unlike its random init (LayerScale 0.01, zero special
    tokens), they make every block's effect visible in the outputs."""
    return synthetic_model('tiny', seed=3)


@pytest.fixture(scope='module')
def model(tiny_model):
    """The model a model test streams through: the tiny preset with recipe weights."""
    return tiny_model


@pytest.fixture
def harness_factory():
    """Makes node harnesses (node_harness.Harness), a stand-in model by default; closes them."""
    from node_harness import WIDTH, Harness, known_source
    from standin_model import StandInModel

    from vggt_ros.reconstructor import Reconstructor

    harnesses = []

    def make(source=known_source, reconstructor=None, topics=None, **overrides):
        reconstructor = reconstructor or Reconstructor(StandInModel(source), image_width=WIDTH)
        overrides.setdefault('diagnostics_period', 0.1)  # diagnostics checks wait less
        harnesses.append(Harness(reconstructor, topics, **overrides))
        return harnesses[-1]

    yield make
    for harness in harnesses:
        harness.close()


@pytest.fixture
def context():
    """An initialised rclpy context of the test's own."""
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)
