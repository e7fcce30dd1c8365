"""FastVGGT token merging in streaming sessions: the seam, the partition, merge/unmerge, counts,
switching between frames, and how far merged outputs are from unmerged ones (reported only)."""

import math

import pytest
import torch
from merging_agreement import report

from vggt_ros.model.config import MergingConfig, as_merging_config
from vggt_ros.model.merging import (
    FramePartition,
    global_attention_flops,
    partition_frame,
    token_counts,
)

FRAMES, HEIGHT, WIDTH = 10, 70, 98  # 5 x 7 patches: odd sides, so edge cells are cut
ROWS, COLS, SPECIAL = 5, 7, 5
TOKENS = SPECIAL + ROWS * COLS
OUTPUTS = ('pose_enc', 'depth', 'depth_conf', 'world_points', 'world_points_conf')


@pytest.fixture(scope='module')
def images():
    return torch.rand(FRAMES, 3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope='module')
def unmerged(model, images):
    return stream(model.new_session(), images)


def stream(session, images):
    frames = [session.step(image) for image in images]
    return {name: torch.stack([frame[name] for frame in frames]) for name in frames[0]}


def span_lengths(session, layer):
    return [length for _, length in session.caches[0].layers[layer].spans]


def test_merging_off_is_bit_identical(model, images, unmerged):
    depth = model.config.depth
    for merging in (MergingConfig(enabled=False), {'enabled': False}, {'merge_start': depth}):
        off = stream(model.new_session(merging=merging), images)
        for name in OUTPUTS:
            assert torch.equal(off[name], unmerged[name]), (merging, name)


def test_anchor_frame_is_kept_whole(model, images, unmerged):
    session = model.new_session(merging=MergingConfig())
    first = session.step(images[0])
    for name in OUTPUTS:
        assert torch.equal(first[name], unmerged[name][0]), name
    assert all(span_lengths(session, layer) == [TOKENS] for layer in range(model.config.depth))


@pytest.mark.parametrize('rows, cols, cell', [(5, 7, 2), (28, 37, 2), (6, 9, 3), (4, 4, 1)])
def test_partition_is_one_destination_per_cell_of_the_true_grid(rows, cols, cell):
    config = MergingConfig(cell_size=cell)
    part = partition_frame(config, rows, cols, SPECIAL, frame_index=1)
    tokens = SPECIAL + rows * cols
    everything = torch.cat([part.destinations, part.protected, part.sources]).sort().values
    assert torch.equal(everything, torch.arange(tokens))  # disjoint and complete
    assert torch.equal(part.destinations[:SPECIAL], torch.arange(SPECIAL))
    patch = part.destinations[SPECIAL:] - SPECIAL
    row, col = patch // cols, patch % cols
    cell_index = (row // cell) * math.ceil(cols / cell) + col // cell
    cells = math.ceil(rows / cell) * math.ceil(cols / cell)
    assert torch.equal(cell_index.sort().values, torch.arange(cells))
    counts = token_counts(config, rows, cols, SPECIAL)
    assert (len(part.destinations), len(part.protected), len(part.sources)) == counts[1:4]


def test_protected_tokens_are_a_fixed_stride_over_the_non_destinations():
    part = partition_frame(MergingConfig(), 28, 37, SPECIAL, frame_index=3)
    others = torch.cat([part.protected, part.sources]).sort().values
    rank = torch.searchsorted(others, part.protected)
    assert len(part.protected) == 104
    assert torch.equal(rank, torch.arange(104) * (len(others) // 104))


def test_destination_draw_depends_on_seed_and_frame_only():
    def draw(seed, frame):
        return partition_frame(MergingConfig(seed=seed), 28, 37, SPECIAL, frame).destinations

    assert torch.equal(draw(0, 5), draw(0, 5))
    assert not torch.equal(draw(0, 5), draw(0, 6))
    assert not torch.equal(draw(0, 5), draw(1, 5))


def hand_made(ratio):
    """8 tokens: destinations 0 and 3, token 5 protected; sources 1, 2, 7 are nearest to 0 and
    4, 6 nearest to 3, by decreasing similarity 1, 4, 6, 2, 7. Token 5 would match 0 best."""
    part = FramePartition(
        destinations=torch.tensor([0, 3]),
        protected=torch.tensor([5]),
        sources=torch.tensor([1, 2, 4, 6, 7]),
        merge_ratio=ratio,
    )
    metric = torch.tensor(
        [[1, 0], [1, 0.1], [1, 0.5], [0, 1], [0.2, 1], [1, 0], [0.3, 1], [1, 0.9]]
    )
    return part.match(5 * metric[None])  # cosine: the scale must not matter


def test_merge_averages_sources_into_their_nearest_destination():
    merge = hand_made(ratio=1.0)
    x = torch.randn(1, 2, 8, 3, generator=torch.Generator().manual_seed(1))  # [B, heads, P, D]
    expected = torch.stack(
        [x[..., [0, 1, 2, 7], :].mean(-2), x[..., [3, 4, 6], :].mean(-2), x[..., 5, :]], dim=-2
    )
    torch.testing.assert_close(merge.merge(x), expected, rtol=1e-6, atol=1e-6)
    rows = torch.tensor([[10.0], [20.0], [30.0]])
    assert merge.unmerge(rows)[:, 0].tolist() == [10, 10, 10, 20, 20, 30, 20, 10]


def test_merge_ratio_merges_the_most_similar_sources_first():
    merge = hand_made(ratio=0.6)  # floor(0.6 * 5) = 3 merged: sources 1, 4, 6
    x = torch.randn(1, 8, 4, generator=torch.Generator().manual_seed(2))
    expected = torch.stack(
        [x[0, [0, 1]].mean(0), x[0, [3, 4, 6]].mean(0), x[0, 2], x[0, 5], x[0, 7]]
    )
    torch.testing.assert_close(merge.merge(x)[0], expected, rtol=1e-6, atol=1e-6)
    rows = torch.arange(5.0)[:, None] * 10
    assert merge.unmerge(rows)[:, 0].tolist() == [0, 0, 20, 10, 10, 30, 10, 40]


def test_merge_ratio_zero_only_reorders():
    merge = hand_made(ratio=0.0)
    x = torch.randn(1, 8, 4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(merge.merge(x)[0], x[0, [0, 3, 1, 2, 4, 5, 6, 7]])
    assert torch.equal(merge.unmerge(merge.merge(x)), x)


def test_token_counts_closed_form():
    assert token_counts(MergingConfig(), ROWS, COLS, SPECIAL) == (40, 17, 4, 19, 19, 21)
    assert token_counts(MergingConfig(merge_ratio=0.5), ROWS, COLS, SPECIAL).kept == 31
    # 518 x 392 px: 28 x 37 patches, 14 x 19 cells; FastVGGT's defaults keep ~0.35 of a frame.
    assert token_counts(MergingConfig(), 28, 37, SPECIAL) == (1041, 271, 104, 666, 666, 375)
    assert token_counts(MergingConfig(cell_size=1), 4, 4, SPECIAL).kept == 21  # nothing to merge


def test_global_attention_flops_closed_form():
    config = MergingConfig(merge_start=2)
    unmerged_block = 4 * 40 * (3 * 40) * 64
    merged_block = 4 * 21 * (40 + 2 * 21) * 64 + 2 * 19 * 17 * 64
    assert global_attention_flops(None, ROWS, COLS, 3, 64, 4) == 4 * unmerged_block
    flops = global_attention_flops(config, ROWS, COLS, 3, 64, 4)
    assert flops == 2 * merged_block + 2 * unmerged_block
    assert global_attention_flops(config, ROWS, COLS, 1, 64, 4) == 4 * 40 * 40 * 64 * 4
    for window in (8, 32):
        ratio = global_attention_flops(MergingConfig(), 28, 37, window, 1024, 24) / (
            global_attention_flops(None, 28, 37, window, 1024, 24)
        )
        print(f'\n518x392, window {window}: merged/unmerged global-attention FLOPs {ratio:.3f}')
        assert ratio < 0.5


@pytest.mark.parametrize('ratio', [1.0, 0.5])
def test_cached_token_counts_follow_the_closed_form(model, images, ratio):
    config = MergingConfig(merge_start=2, merge_ratio=ratio)
    session = model.new_session(merging=config)
    for image in images[:4]:
        session.step(image)
    kept = token_counts(config, ROWS, COLS, SPECIAL).kept
    for layer in range(model.config.depth):
        per_frame = kept if layer >= config.merge_start else TOKENS
        assert span_lengths(session, layer) == [TOKENS] + 3 * [per_frame], layer


def buffers(caches):
    return [
        (layer.keys.data_ptr(), layer.values.data_ptr(), layer.capacity)
        for cache in caches
        for layer in cache.layers
    ]


def test_switching_between_frames_needs_no_reset_and_keeps_buffers(model, images):
    """On, off, on (the last as ROS parameters give it): windows mix merged and whole frames.

    The global blocks' buffers, sized by the whole anchor frame, never change; the camera trunk's
    settle once the window is full (as without merging)."""
    window, kept = 4, token_counts(MergingConfig(), ROWS, COLS, SPECIAL).kept
    schedule = 4 * [MergingConfig()] + 3 * [None] + 3 * [{'merge_ratio': 1.0}]
    session = model.new_session(window=window)
    lengths, tokens_buffers, allocated = [], None, None
    for t, (merging, image) in enumerate(zip(schedule, images, strict=True)):
        session.set_merging(merging)
        out = session.step(image)
        assert all(value.isfinite().all() for value in out.values())
        lengths.append(kept if merging is not None and t > 0 else TOKENS)
        in_window = lengths[:1] + lengths[1:][1 - window :]
        assert all(span_lengths(session, layer) == in_window for layer in range(4)), t
        tokens_buffers = tokens_buffers or buffers(session.caches[:1])
        assert buffers(session.caches[:1]) == tokens_buffers, t
        if t >= window - 1:
            allocated = allocated or (buffers(session.caches), session.cache_bytes)
            assert (buffers(session.caches), session.cache_bytes) == allocated, t
    assert session.frames_seen == FRAMES and session.window_fill == window
    assert session.caches[0].layers[0].capacity == window * TOKENS


def test_merge_ratio_zero_matches_unmerged_up_to_float_order(model, images, unmerged):
    session = model.new_session(merging=MergingConfig(merge_ratio=0.0))
    zero = stream(session, images)
    for name in OUTPUTS:
        torch.testing.assert_close(zero[name], unmerged[name], rtol=1e-4, atol=1e-5)
    assert span_lengths(session, 0) == FRAMES * [TOKENS]


def test_agreement_with_unmerged_outputs_is_reported(model):
    """Tiny preset, synthetic weights, 10 x 14 patches (145 tokens, 54 kept), 12 frames."""
    images = torch.rand(12, 3, 140, 196, generator=torch.Generator().manual_seed(4))
    for window in (None, 4):
        whole = stream(model.new_session(window=window), images)
        merged = stream(model.new_session(window=window, merging=MergingConfig()), images)
        numbers = report(f'tiny 140x196 window {window}', merged, whole)
        assert all(math.isfinite(value) for value in numbers.values())


def test_bad_merging_options_are_rejected(model, images):
    for options in (
        dict(cell_size=0),
        dict(merge_start=-1),
        dict(protected_fraction=1.5),
        dict(merge_ratio=-0.1),
    ):
        with pytest.raises(ValueError):
            MergingConfig(**options)
    with pytest.raises(TypeError, match='merging'):
        as_merging_config('fastvggt')
    with pytest.raises(TypeError):
        as_merging_config({'ratio': 0.5})
    part = partition_frame(MergingConfig(), ROWS, COLS, SPECIAL, frame_index=1)
    with pytest.raises(ValueError, match='cache'):
        model.aggregator(images[:2], merger=part)
