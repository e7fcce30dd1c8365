import logging
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from vggt_ros import checkpoints
from vggt_ros.checkpoints import (
    CheckpointError,
    load_model,
    load_state_dict_file,
    resolve_checkpoint,
)
from vggt_ros.model import StreamVGGT


@pytest.fixture(scope='module')
def reference() -> StreamVGGT:
    torch.manual_seed(0)
    return StreamVGGT(preset='tiny').eval()


@pytest.fixture()
def state(reference):
    return {k: v.clone() for k, v in reference.state_dict().items()}


def save(obj, path):
    torch.save(obj, path)
    return path


def assert_same_weights(model, reference):
    expected = reference.state_dict()
    got = model.state_dict()
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=0, msg=key)
    # Buffers the checkpoint does not hold (e.g. the ImageNet mean/std) must be real and right.
    buffers = dict(reference.named_buffers())
    for name, buf in model.named_buffers():
        assert not buf.is_meta, name
        torch.testing.assert_close(buf, buffers[name], rtol=0, atol=0, msg=name)


def test_pth_round_trip(tmp_path, state, reference):
    model = load_model(save(state, tmp_path / 'w.pth'), preset='tiny')
    assert_same_weights(model, reference)
    assert not model.training
    assert all(not p.requires_grad and not p.is_meta for p in model.parameters())


def test_weights_are_adopted_not_copied(tmp_path, state, monkeypatch):
    # A 5 GB checkpoint must not be held twice: the model takes over the (mmap-backed) tensors.
    path = save(state, tmp_path / 'w.pth')
    loaded = load_state_dict_file(path)
    monkeypatch.setattr(checkpoints, 'load_state_dict_file', lambda _: loaded)
    params = dict(load_model(path, preset='tiny').named_parameters())
    assert all(params[k].data_ptr() == v.data_ptr() for k, v in loaded.items())


def test_safetensors_round_trip(tmp_path, state, reference):
    path = tmp_path / 'w.safetensors'
    save_file({k: v.contiguous() for k, v in state.items()}, path)
    assert_same_weights(load_model(str(path), preset='tiny'), reference)


@pytest.mark.parametrize('prefix', ['module.', 'model.', 'module.model.'])
def test_wrapper_prefix_is_stripped(tmp_path, state, prefix):
    path = save({prefix + k: v for k, v in state.items()}, tmp_path / 'w.pt')
    assert load_state_dict_file(path).keys() == state.keys()


@pytest.mark.parametrize('wrapper', ['model', 'state_dict'])
def test_wrapped_state_dict(tmp_path, state, reference, wrapper):
    path = save({wrapper: state, 'epoch': 3}, tmp_path / 'w.pth')
    assert_same_weights(load_model(path, preset='tiny'), reference)


def test_track_head_keys_are_dropped(tmp_path, state, reference):
    state['track_head.tracker.fmap_norm.weight'] = torch.ones(128)
    loaded = load_state_dict_file(save(state, tmp_path / 'w.pth'))
    assert not any(k.startswith('track_head.') for k in loaded)
    assert_same_weights(load_model(tmp_path / 'w.pth', preset='tiny'), reference)


def test_missing_and_unexpected_keys_are_named(tmp_path, state):
    missing = next(iter(state))
    del state[missing]
    state['aggregator.not_a_weight'] = torch.zeros(2)
    with pytest.raises(CheckpointError) as err:
        load_model(save(state, tmp_path / 'w.pth'), preset='tiny')
    assert missing in str(err.value) and 'aggregator.not_a_weight' in str(err.value)


def test_shape_mismatch_is_named(tmp_path, state):
    key = next(k for k, v in state.items() if v.ndim == 2)
    state[key] = torch.zeros(state[key].shape[0] + 1, state[key].shape[1])
    with pytest.raises(CheckpointError, match='shape mismatch') as err:
        load_model(save(state, tmp_path / 'w.pth'), preset='tiny')
    assert key in str(err.value)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


@pytest.mark.filterwarnings('ignore:Detected pickle protocol')
@pytest.mark.parametrize('zip_format', [True, False])
def test_pickle_that_runs_code_is_refused(tmp_path, zip_format):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    payload = {'aggregator.camera_token': _Exploit(marker)}
    if zip_format:
        torch.save(payload, path)
    else:
        with open(path, 'wb') as f:
            pickle.dump(payload, f)
    with pytest.raises(CheckpointError, match='cannot read checkpoint') as err:
        load_state_dict_file(path)
    assert not marker.exists()
    message = str(err.value)
    assert 'weights_only=False' not in message
    assert err.value.__cause__ is None  # torch's own message, which advises it, is not chained
    assert 'not a plain state_dict' in message and 'you trust' in message
    assert 'state_dict()' in message and 'save_file' in message  # how to convert a trusted one


@pytest.mark.filterwarnings('ignore:Detected pickle protocol')
@pytest.mark.parametrize('name', ['junk.pth', 'junk.safetensors'])
def test_garbage_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match='cannot read checkpoint'):
        load_state_dict_file(path)


@pytest.mark.parametrize('obj', [[1, 2, 3], torch.zeros(3), {'a': 1}, {}])
def test_not_a_state_dict(tmp_path, obj):
    with pytest.raises(CheckpointError):
        load_state_dict_file(save(obj, tmp_path / 'w.pth'))


def test_missing_local_file(tmp_path):
    with pytest.raises(CheckpointError, match='not found'):
        resolve_checkpoint(tmp_path / 'nothing.pth')
    with pytest.raises(CheckpointError, match='not found'):
        resolve_checkpoint('weights/nothing.pth')


@pytest.mark.parametrize(
    'spec', ['lch01/StreamVGGT', 'facebook/VGGT-1B', 'someone/repo:weights.safetensors']
)
def test_hugging_face_id_offline(tmp_path, monkeypatch, spec):
    import huggingface_hub.constants

    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)
    with pytest.raises(CheckpointError) as err:
        resolve_checkpoint(spec, cache_dir=tmp_path / 'hf-cache')
    message = str(err.value)
    assert spec.split(':')[0] in message and 'local path' in message and 'huggingface.co' in message


def test_unknown_repo_needs_a_file_name():
    with pytest.raises(CheckpointError, match='someone/repo:FILE'):
        resolve_checkpoint('someone/repo')


def test_full_model_needs_a_checkpoint():
    with pytest.raises(CheckpointError, match='needs a checkpoint'):
        load_model(None, preset='streamvggt-1b')


def test_tiny_without_checkpoint_warns(caplog):
    with caplog.at_level(logging.WARNING, logger='vggt_ros.checkpoints'):
        model = load_model(None, preset='tiny')
    assert isinstance(model, StreamVGGT)
    assert 'RANDOM' in caplog.text
