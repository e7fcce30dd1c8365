"""The evaluator scores what the robot runs: the node and vggt-eval, given one bag and one params
file, publish and record identical poses and depth (real rclpy for the node): the tiny preset with
everything that shapes them away from its default, and the shipped small model as
config/small.yaml deploys it (poses from matches, re-anchoring)."""

import numpy as np
import pytest
import yaml
from builtin_interfaces.msg import Time
from node_harness import NS, stamp_of, transform_matrix
from std_msgs.msg import Header

from vggt_ros import images, messages, param_options, params
from vggt_ros.checkpoints import load_model
from vggt_ros.evaluation import cli
from vggt_ros.evaluation.bag_io import open_bag, read_messages, topic_connections
from vggt_ros.evaluation.replay import IMAGE_TYPES, replay
from vggt_ros.pipeline import StreamPipeline
from vggt_ros.reconstructor import Reconstructor
from vggt_ros.synthetic import make_sequence, write_bag
from vggt_ros.training import heldout

IMAGE_TOPIC = '/camera/image_raw'
# Everything that shapes poses and depth, away from its default.
PARAMETERS = {
    'preset': 'tiny',
    'image_width': 56,
    'window_size': 3,
    'camera_cache': 'causal',
    'conf_threshold': 2.5,
    'scale': 2,  # an integer, as a params file may hold it
    'world_axes': 'ros',
    'tf_mode': 'camera',
    'merging': {'enabled': True, 'cell_size': 1},
}

pytestmark = pytest.mark.usefixtures('single_torch_thread')


# Long enough for the deployed configuration to re-anchor (0.5 of the anchor's depth away).
DEPLOYED_FRAMES = 40


@pytest.fixture(scope='module')
def bag(tmp_path_factory):
    return write_bag(make_sequence('walk', 6, 112, 84), tmp_path_factory.mktemp('bags') / 'walk')


@pytest.fixture(scope='module')
def orbit_bag(tmp_path_factory):
    sequence = make_sequence('orbit', DEPLOYED_FRAMES, heldout.WIDTH, heldout.HEIGHT)
    return write_bag(sequence, tmp_path_factory.mktemp('bags') / 'orbit')


@pytest.fixture
def params_file(tmp_path):
    path = tmp_path / 'robot.yaml'
    path.write_text(yaml.safe_dump({'vggt_stream': {'ros__parameters': PARAMETERS}}))
    return path


def evaluator_outputs(bag, values, model):
    """(stamp -> pose, stamp -> depth, how many re-anchorings) as the evaluator records them."""
    reconstructor = Reconstructor(model, **param_options.reconstructor_options(values))
    poses, depths, reanchored = {}, {}, []

    def record(outcome):
        if outcome.status == 'processed':
            poses[outcome.stamp_ns] = outcome.frame.pose
            depths[outcome.stamp_ns] = outcome.frame.depth
            reanchored.append(outcome.reanchored)

    with open_bag(bag) as reader:
        pipeline = StreamPipeline(reconstructor, values)
        replay(pipeline, values, reader, IMAGE_TOPIC, progress=False, on_outcome=record)
    return poses, depths, sum(reanchored)


def bag_images(bag):
    """The bag's camera images as rclpy messages, byte for byte."""
    with open_bag(bag) as reader:
        connections = topic_connections(reader, IMAGE_TOPIC, IMAGE_TYPES)
        for _, _, message in read_messages(reader, connections):
            stamp = Time(sec=message.header.stamp.sec, nanosec=message.header.stamp.nanosec)
            header = Header(stamp=stamp, frame_id=message.header.frame_id)
            yield messages.array_to_image(images.image_to_array(message), message.encoding, header)


def test_params_files_are_read_as_the_node_reads_them(params_file):
    values = cli.parameter_values(cli.parse_args(['bag', '--params-file', str(params_file)]))
    assert values['merging.enabled'] is True and values['merging.cell_size'] == 1
    assert values['scale'] == 2.0 and type(values['scale']) is float
    assert values['window_size'] == 3 and values['device'] == 'auto'  # the rest: node defaults
    flag = ['--params-file', str(params_file), '--window_size', '5', '--merging.enabled', 'false']
    overridden = cli.parameter_values(cli.parse_args(['bag', *flag]))
    assert overridden['window_size'] == 5 and overridden['merging.enabled'] is False
    with pytest.raises(ValueError, match='finite'):
        cli.parameter_values(cli.parse_args(['bag', '--scale', 'nan']))


def node_matches_evaluator(bag, values, model, harness_factory):
    """Send the bag's images to a node with `values` one at a time (it drops nothing) and assert
    that it publishes the evaluator's poses and depth; returns the evaluator's (poses, depths,
    re-anchorings)."""
    expected = evaluator_outputs(bag, values, model)
    expected_poses, expected_depths, _ = expected
    node_parameters = {name: values[name] for name in params.SPECS if name != 'checkpoint'}
    reconstructor = Reconstructor(model, **param_options.reconstructor_options(values))
    harness = harness_factory(reconstructor=reconstructor, **node_parameters)
    published = 0
    for image in bag_images(bag):
        tf = harness.send(image)
        depth = harness.wait_for(f'{NS}/depth', image.header.stamp)
        stamp = stamp_of(tf).sec * 1_000_000_000 + stamp_of(tf).nanosec
        rotation, translation = transform_matrix(tf.transforms[0].transform)
        pose = expected_poses[stamp]
        np.testing.assert_allclose(rotation, pose[:3, :3], atol=1e-12)
        np.testing.assert_array_equal(translation, pose[:3, 3])
        np.testing.assert_array_equal(images.image_to_array(depth), expected_depths[stamp])
        published += 1
    assert published == len(expected_poses)
    return expected


def test_node_and_evaluator_agree_on_poses_and_depth(bag, params_file, tiny_model, harness_factory):
    values = cli.parameter_values(cli.parse_args([str(bag), '--params-file', str(params_file)]))
    poses, depths, _ = node_matches_evaluator(bag, values, tiny_model, harness_factory)
    assert len(poses) == 6
    assert any(np.isnan(depth).any() for depth in depths.values())  # the threshold bit


def test_the_deployed_node_publishes_what_the_evaluator_scores(orbit_bag, harness_factory):
    """The shipped model in config/small.yaml, as `make heldout` scores it and a robot runs it:
    poses from matches (PnP, refinement, tracks) and re-anchoring come out alike in both."""
    arguments = [str(orbit_bag), '--params-file', str(heldout.CONFIG)]
    # No robot here: the camera's own TF from the first frame, not tf_mode auto's wait for a URDF.
    values = {**cli.parameter_values(cli.parse_args(arguments)), 'tf_mode': 'camera'}
    assert values['pose_source'] == 'matches'
    model = load_model(None, values['preset'])
    poses, _, reanchorings = node_matches_evaluator(orbit_bag, values, model, harness_factory)
    assert len(poses) == DEPLOYED_FRAMES and reanchorings >= 1
    assert all(np.isfinite(pose).all() for pose in poses.values())
