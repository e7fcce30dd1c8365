"""Parity with the reference StreamVGGT: the 1B model on synthetic weights gives the golden outputs.

The golden file holds the reference implementation's outputs (fp32, CPU) for 4 frames of 28x42 px
with weights from recipe synthetic-weights-v1, seed 1 (see /work/shared/golden/README.md).
"""

from pathlib import Path

import pytest
import torch
from merging_agreement import report

from vggt_ros.model import MergingConfig
from vggt_ros.model.synthetic_weights import synthetic_model

DATA = Path(__file__).parent / 'data'
OUTPUTS = ('pose_enc', 'depth', 'depth_conf', 'world_points', 'world_points_conf')
# A faithful fp32 implementation agrees to about 1e-4 relative, 1e-5 absolute on depth.
TOLERANCE = dict(rtol=1e-4, atol=1e-5)


@pytest.fixture(scope='module')
def golden():
    return torch.load(DATA / 'streamvggt_seed1_4x28x42.pt', weights_only=True)


@pytest.fixture(scope='module')
def model():
    """The 1.19B-parameter model with the golden recipe's weights, numbered by the official keys."""
    return synthetic_model('streamvggt-1b', seed=1, keys=DATA / 'streamvggt_state_dict_keys.tsv')


def assert_outputs_close(label, actual, expected):
    for name in OUTPUTS:
        error = (actual[name] - expected[name]).abs()
        relative = error / expected[name].abs().clamp_min(1e-2)
        print(f'{label:>16} {name:<17} max abs {error.max():.1e}, rel {relative.max():.1e}')
    for name in OUTPUTS:
        assert actual[name].shape == expected[name].shape, name
        torch.testing.assert_close(
            actual[name], expected[name], **TOLERANCE, msg=lambda text, name=name: f'{name}: {text}'
        )


def stream(model, images, **session_options):
    session = model.new_session(**session_options)
    frames = [session.step(image) for image in images]
    assert session.frames_seen == session.window_fill == len(images)
    return {name: torch.stack([frame[name] for frame in frames]) for name in frames[0]}


def test_aggregator_tokens_match_reference(model, golden):
    tokens = model.aggregator(golden['images'])
    for layer, expected in golden['aggregator_tokens_streaming'].items():
        torch.testing.assert_close(tokens[layer], expected, rtol=1e-4, atol=2e-5)


def test_streaming_official_camera_cache_matches_reference_inference(model, golden):
    actual = stream(model, golden['images'], camera_cache='official')
    assert_outputs_close('session official', actual, golden['streaming'])


def test_forward_causal_matches_reference_forward(model, golden):
    assert_outputs_close('forward_causal', model.forward_causal(golden['images']), golden['causal'])


def test_streaming_causal_camera_cache_matches_reference_forward(model, golden):
    actual = stream(model, golden['images'], camera_cache='causal')
    assert_outputs_close('session causal', actual, golden['causal'])


def test_merging_agreement_is_reported(model, golden):
    """Merging changes the outputs, so this reports by how much (pytest -s), asserting nothing
    beyond finiteness. At 28 x 42 px the grid is 2 x 3 patches: of 11 tokens a merged frame keeps
    8 (7 destinations, 1 protected), so the effect is small by construction."""
    merged = stream(model, golden['images'], camera_cache='official', merging=MergingConfig())
    numbers = report('golden 1B 28x42', merged, golden['streaming'])
    assert all(torch.isfinite(torch.tensor(value)) for value in numbers.values())
