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


def fill(sizes, window):
    """A cache and its naive twin after frames of `sizes` tokens, each committed."""
    cache, naive = LayerKVCache(window), []
    for seed, tokens in enumerate(sizes):
        if window is not None and len(naive) == window:
            del naive[1]
        naive.append(frame(tokens, seed))
        cache.new_frame()
        cache.extend(*naive[-1])
        cache.commit()
    return cache, naive


@pytest.mark.parametrize(
    'sizes', [[5] * 12, [7, 3, 2, 3, 3, 1, 4, 2, 2, 5, 3, 3]], ids=['equal', 'variable']
)
@pytest.mark.parametrize('window', [2, 4, None])
def test_cache_keeps_anchor_and_most_recent_frames(sizes, window):
    for frames in range(1, len(sizes) + 1):
        cache, naive = fill(sizes[:frames], window)
        assert cache.keys.shape == (HEADS, cache.num_tokens, HEAD_DIM) == cache.values.shape
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


def snapshot(cache):
    return cache.spans, cache.num_tokens, cache.keys.clone(), cache.values.clone()


def assert_restored(cache, before):
    spans, tokens, keys, values = before
    assert cache.spans == spans and cache.num_tokens == tokens
    assert torch.equal(cache.keys, keys) and torch.equal(cache.values, values)


def failed_frame(cache, parts):
    """Open a frame, extend it by `parts` (token counts), then roll it back."""
    cache.new_frame()
    for i, tokens in enumerate(parts):
        cache.extend(*frame(tokens, 1000 + i))
    cache.rollback()


@pytest.mark.parametrize(
    ('window', 'sizes', 'parts'),
    [
        (3, [4, 4, 4, 4], [4]),  # equal frames: the last placed is moved into the evicted hole
        (4, [6, 3, 1, 2, 2], [2]),  # the evicted frame (1) fits no other: all after it shift
        (3, [5, 4, 2, 3], [2, 1]),  # a shift again, the failed frame built by two extends
        (3, [5, 3, 3, 3, 3], [1, 1, 1]),  # extends overwrite the moved frame's old tokens
        (2, [6, 2, 2], [2]),  # the evicted frame is the last placed: nothing moves
        (3, [4, 4, 4], []),  # rolled back before any extend
    ],
    ids=['move', 'shift', 'shift-parts', 'move-parts', 'tail', 'no-extend'],
)
def test_rollback_after_eviction_restores_the_window(window, sizes, parts):
    cache, naive = fill(sizes, window)
    before, pointer, backup = snapshot(cache), cache.keys.data_ptr(), cache.backup_nbytes
    failed_frame(cache, parts)
    assert_restored(cache, before)
    assert cache.keys.data_ptr() == pointer and cache.backup_nbytes == backup
    for seed in range(2):  # the stream goes on as if the failed frame never came
        del naive[1]
        naive.append(frame(sizes[-1], 500 + seed))
        cache.new_frame()
        cache.extend(*naive[-1])
        cache.commit()
        assert_holds(cache, naive)


def test_backup_is_one_frame_allocated_as_the_window_fills():
    cache, _ = fill([4, 4], window=3)
    assert cache.backup_nbytes == 0
    cache.new_frame()
    assert cache.backup_nbytes == 2 * HEADS * 4 * HEAD_DIM * 4  # fp32 keys and values
    cache.extend(*frame(4, 2))
    for seed in range(3, 8):
        cache.commit()
        cache.new_frame()
        cache.extend(*frame(4 - seed % 2, seed))  # merged frames are smaller
        assert cache.backup_nbytes == 2 * HEADS * 4 * HEAD_DIM * 4


def test_rollback_without_window_drops_the_frame_and_growth_keeps_the_prefix():
    cache, naive = fill([3, 3], window=None)
    before = snapshot(cache)
    failed_frame(cache, [3, 30])  # forces a reallocation mid-frame
    assert_restored(cache, before)
    naive.append(frame(3, 7))
    cache.new_frame()
    cache.extend(*naive[-1])
    assert_holds(cache, naive)


def test_commit_makes_rollback_a_no_op_and_new_frame_commits_the_open_one():
    cache, naive = fill([2, 2, 2], window=3)
    cache.rollback()
    assert_holds(cache, naive)
    opened = frame(2, 9)
    cache.new_frame()
    cache.extend(*opened)
    cache.new_frame()  # commits the frame left open
    cache.extend(*frame(2, 10))
    cache.rollback()
    assert_holds(cache, [naive[0], naive[2], opened])
