"""Streaming sessions on the tiny preset: parity with forward_causal, windows, caches, reset."""

import math

import pytest
import torch

from vggt_ros.model.rope import apply_rope, rope_tables, token_positions

FRAMES, HEIGHT, WIDTH = 12, 42, 56  # 3 x 4 patches, 17 tokens per frame
OUTPUTS = ('pose_enc', 'depth', 'depth_conf', 'world_points', 'world_points_conf')
DENSE = ('depth', 'depth_conf', 'world_points', 'world_points_conf')
TOLERANCE = dict(rtol=1e-4, atol=1e-5)


@pytest.fixture(scope='module')
def images():
    return torch.rand(FRAMES, 3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope='module')
def causal(model, images):
    return model.forward_causal(images)


def stream(session, images):
    frames = [session.step(image) for image in images]
    return {name: torch.stack([frame[name] for frame in frames]) for name in frames[0]}


def assert_close(actual, expected, names=OUTPUTS, frames=slice(None)):
    for name in names:
        torch.testing.assert_close(actual[name][frames], expected[name][frames], **TOLERANCE)


def test_outputs_have_the_contract_shapes(model, images):
    frame = model.new_session().step(images[0])
    assert frame['pose_enc'].shape == (9,)
    assert frame['world_points'].shape == (HEIGHT, WIDTH, 3)
    for name in ('depth', 'depth_conf', 'world_points_conf'):
        assert frame[name].shape == (HEIGHT, WIDTH)
    assert all(value.dtype == torch.float32 for value in frame.values())
    assert (frame['depth'] > 0).all() and (frame['depth_conf'] > 1).all()


def test_causal_camera_cache_reproduces_forward_causal(model, images, causal):
    assert_close(stream(model.new_session(camera_cache='causal'), images), causal)


def test_official_camera_cache_changes_only_the_poses(model, images, causal):
    official = stream(model.new_session(camera_cache='official'), images)
    assert_close(official, causal, DENSE)
    assert (official['pose_enc'] - causal['pose_enc']).abs().max() > 1e-3


@pytest.mark.parametrize('window', [FRAMES, FRAMES + 5])
def test_window_covering_the_stream_equals_unbounded(model, images, causal, window):
    session = model.new_session(window=window, camera_cache='causal')
    assert_close(stream(session, images), causal)
    assert session.window_fill == FRAMES


def test_window_diverges_only_after_first_eviction(model, images, causal):
    window = 4
    session = model.new_session(window=window, camera_cache='causal')
    windowed = stream(session, images)
    assert session.window_fill == window and session.frames_seen == FRAMES
    assert_close(windowed, causal, frames=slice(0, window))
    for t in range(window, FRAMES):
        assert not torch.allclose(windowed['depth'][t], causal['depth'][t], **TOLERANCE), t


def test_window_of_two_sees_anchor_and_current_frame_only(model, images):
    """With W = 2 frame t attends to frames 0 and t only: the causal forward of just those two."""
    windowed = stream(model.new_session(window=2, camera_cache='causal'), images)
    for t in (1, 5, FRAMES - 1):
        pair = model.forward_causal(images[[0, t]])
        for name in OUTPUTS:
            torch.testing.assert_close(windowed[name][t], pair[name][1], **TOLERANCE)


def buffers(session):
    return [
        (layer.keys.data_ptr(), layer.values.data_ptr(), layer.capacity)
        for cache in session.caches
        for layer in cache.layers
    ]


@pytest.mark.parametrize('camera_cache', ['official', 'causal'])
def test_window_buffers_are_fixed_once_full(model, images, camera_cache):
    window = 4
    session = model.new_session(window=window, camera_cache=camera_cache)
    seen = []
    for image in images:
        session.step(image)
        seen.append((buffers(session), session.cache_bytes))
    assert all(state == seen[window - 1] for state in seen[window - 1 :])
    tokens = session.caches[0].layers[0]
    assert tokens.capacity == window * 17 and tokens.num_tokens == window * 17


def test_unbounded_cache_grows_geometrically(model, images):
    session = model.new_session()
    reallocations, previous = 0, None
    for image in images:
        session.step(image)
        pointer = session.caches[0].layers[0].keys.data_ptr()
        reallocations += pointer != previous
        previous = pointer
    assert reallocations <= math.ceil(math.log2(FRAMES)) + 1
    assert session.window_fill == FRAMES


def test_reset_starts_a_new_world(model, images):
    session = model.new_session(window=3)
    for image in images[:5]:
        session.step(image)
    session.reset()
    assert session.frames_seen == session.window_fill == 0
    after_reset = session.step(images[7])
    fresh = model.new_session(window=3).step(images[7])
    for name in OUTPUTS:
        torch.testing.assert_close(after_reset[name], fresh[name], rtol=0, atol=0)
    assert session.frames_seen == session.window_fill == 1


def test_cached_keys_are_normalised_and_rotated(model, images):
    """The cache holds k_norm + RoPE of each frame's raw key, as computed once for that frame."""
    layer = 1
    block = model.aggregator.global_blocks[layer]
    raw = []
    handle = block.attn.qkv.register_forward_hook(lambda module, args, out: raw.append(out))
    session = model.new_session()
    try:
        for image in images[:2]:
            session.step(image)
    finally:
        handle.remove()
    heads, aggregator = block.attn.num_heads, model.aggregator
    positions = token_positions(HEIGHT // 14, WIDTH // 14, aggregator.patch_start_idx)
    tables = rope_tables(positions, aggregator.head_dim, aggregator.rope_freq)
    cache = session.caches[0].layers[layer]
    for qkv, (start, length) in zip(raw, cache.spans, strict=True):
        k = qkv.reshape(1, length, 3, heads, -1)[:, :, 1].transpose(1, 2)
        with torch.inference_mode():
            expected = apply_rope(block.attn.k_norm(k), tables)[0]
        torch.testing.assert_close(cache.keys[:, start : start + length], expected, rtol=0, atol=0)


def test_bf16_autocast_runs_aggregator_low_and_heads_fp32(model, images, causal):
    session = model.new_session(camera_cache='causal', precision='bf16')
    out = stream(session, images[:3])
    assert session.caches[0].layers[0].keys.dtype == torch.bfloat16
    assert all(value.dtype == torch.float32 for value in out.values())
    torch.testing.assert_close(out['depth'], causal['depth'][:3], rtol=0.1, atol=0.05)


def test_session_rejects_bad_input(model, images):
    session = model.new_session()
    session.step(images[0])
    with pytest.raises(ValueError, match='reset'):
        session.step(images[1, :, :28])
    with pytest.raises(ValueError, match='multiples of 14'):
        model.new_session().step(images[0, :, :40])
    with pytest.raises(ValueError, match='camera_cache'):
        model.new_session(camera_cache='shared')
    with pytest.raises(ValueError, match='precision'):
        model.new_session(precision='int8')
    with pytest.raises(ValueError, match='window'):
        model.new_session(window=1)
    with pytest.raises(TypeError, match='merging'):
        model.new_session(merging='fastvggt')
