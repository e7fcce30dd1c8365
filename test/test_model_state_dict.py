"""The 1B model's state_dict is the official checkpoint's; the synthetic-weight recipe is exact."""

from pathlib import Path

import pytest
import torch

from vggt_ros.model import StreamVGGT
from vggt_ros.model.synthetic_weights import read_key_shapes, synthetic_tensor

DATA = Path(__file__).parent / 'data'
KEYS_TSV = DATA / 'streamvggt_state_dict_keys.tsv'
GOLDEN = DATA / 'streamvggt_seed1_4x28x42.pt'


def test_state_dict_matches_official_checkpoint_without_track_head():
    official = read_key_shapes(KEYS_TSV)
    assert len(official) == 1797
    expected = [(key, shape) for key, shape in official if not key.startswith('track_head.')]
    assert len(official) - len(expected) == 394
    with torch.device('meta'):
        model = StreamVGGT('streamvggt-1b')
    actual = [(key, tuple(t.shape)) for key, t in model.state_dict().items()]
    assert actual == expected  # same keys, shapes and order
    assert sum(t.numel() for t in model.state_dict().values()) == 1_256_537_516 - 65_941_396
    assert all(t.dtype == torch.float32 for t in model.state_dict().values())


def test_synthetic_weights_match_golden_checksums():
    checksums = torch.load(GOLDEN, weights_only=True)['weight_checksums']
    index = {key: (i, shape) for i, (key, shape) in enumerate(read_key_shapes(KEYS_TSV))}
    for key, (total, total_abs) in checksums.items():
        i, shape = index[key]
        tensor = synthetic_tensor(key, shape, i, seed=1).double()
        assert tensor.sum().item() == pytest.approx(total, rel=1e-9, abs=1e-9)
        assert tensor.abs().sum().item() == pytest.approx(total_abs, rel=1e-9)


def test_unknown_preset_is_rejected():
    with pytest.raises(ValueError, match='tiny'):
        StreamVGGT('streamvggt-7b')
