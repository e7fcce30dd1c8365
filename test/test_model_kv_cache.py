"""LayerKVCache against a naive list of frames: anchor + window, variable sizes, allocation."""

import math

import pytest
import torch

from vggt_ros.model.kv_cache import KVCache, LayerKVCache

HEADS, HEAD_DIM = 2, 3


def frame(tokens, seed):
    generator = torch.Generator().manual_seed(seed)
    k, v = (torch.randn(1, HEADS, tokens, HEAD_DIM, generator=generator) for _ in range(2))
    return k, v


def assert_holds(cache, frames):
    """The cache's spans hold exactly `frames` (arrival order); its valid prefix nothing else."""
    spans = cache.spans
    assert len(spans) == len(frames)
    assert sum(length for _, length in spans) == cache.num_tokens
    for (start, length), (k, v) in zip(spans, frames, strict=True):
        assert length == k.shape[2]
        assert torch.equal(cache.keys[:, start : start + length], k[0])
        assert torch.equal(cache.values[:, start : start + length], v[0])


@pytest.mark.parametrize(
    'sizes', [[5] * 12, [7, 3, 2, 3, 3, 1, 4, 2, 2, 5, 3, 3]], ids=['equal', 'variable']
)
@pytest.mark.parametrize('window', [2, 4, None])
def test_cache_keeps_anchor_and_most_recent_frames(sizes, window):
    cache, naive = LayerKVCache(window), []
    for seed, tokens in enumerate(sizes):
        if window is not None and len(naive) == window:
            del naive[1]
        naive.append(frame(tokens, seed))
        cache.new_frame()
        keys, values = cache.extend(*naive[-1])
        assert keys.shape == (1, HEADS, cache.num_tokens, HEAD_DIM) == values.shape
        assert_holds(cache, naive)


def test_equal_frames_evict_without_reallocating_or_shifting():
    cache, window, tokens = LayerKVCache(window=4), 4, 5
    for seed in range(12):
        cache.new_frame()
        cache.extend(*frame(tokens, seed))
        if seed == 0:
            pointer = cache.keys.data_ptr()
    assert cache.capacity == window * tokens
    assert cache.keys.data_ptr() == pointer
    assert cache.num_frames == window


def test_frame_built_by_several_extends():
    """The reference camera cache appends one entry per refinement iteration to the same frame."""
    cache, naive = LayerKVCache(window=3), []
    for seed in range(7):
        if len(naive) == 3:
            del naive[1]
        cache.new_frame()
        parts = [frame(1, 100 * seed + i) for i in range(4)]
        for part in parts:
            keys, _ = cache.extend(*part)
            assert keys.shape[2] == sum(length for _, length in cache.spans)
        naive.append(tuple(torch.cat(tensors, dim=2) for tensors in zip(*parts, strict=True)))
        assert_holds(cache, naive)


def test_unbounded_growth_is_geometric():
    cache, reallocations, pointer = LayerKVCache(), 0, None
    for seed in range(100):
        cache.new_frame()
        cache.extend(*frame(3, seed))
        if cache.keys.data_ptr() != pointer:
            reallocations, pointer = reallocations + 1, cache.keys.data_ptr()
    assert cache.num_tokens == 300 <= cache.capacity < 600
    assert reallocations <= math.ceil(math.log2(100)) + 1


def test_keys_stored_in_values_dtype():
    cache = LayerKVCache()
    cache.new_frame()
    k, v = frame(4, 0)
    keys, values = cache.extend(k, v.bfloat16())
    assert keys.dtype == values.dtype == torch.bfloat16
    assert cache.nbytes == 2 * HEADS * 4 * HEAD_DIM * 2


def test_reset_keeps_buffers():
    cache = KVCache(num_layers=2, window=3)
    cache.new_frame()
    for layer in cache.layers:
        layer.extend(*frame(4, 0))
    allocated = cache.nbytes
    cache.reset()
    assert cache.num_frames == 0 and cache.layers[0].num_tokens == 0
    assert cache.nbytes == allocated


def test_misuse_is_reported():
    with pytest.raises(ValueError, match='at least 2'):
        LayerKVCache(window=1)
    with pytest.raises(RuntimeError, match='new_frame'):
        LayerKVCache().extend(*frame(1, 0))
