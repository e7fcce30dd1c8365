"""Section 5: FastVGGT token merging on vs off at windows 8 and 32.

(a) one global block at the 1B dimensions with a full window, caches pre-filled as in section 4,
beside the closed-form global-attention FLOPs; (b) whole steps of sessions streamed side by side
(tiny preset), for honesty: DINO, the frame blocks, the MLPs and the heads do not shrink.
"""

from __future__ import annotations

from typing import Any

import torch

from vggt_ros.bench.blocks import block_inputs, cached_step, filled_cache
from vggt_ros.bench.flops import merging_flops
from vggt_ros.bench.harness import (
    Lane,
    Series,
    check_settings,
    ratio,
    stats,
    step_lanes,
    time_in_turn,
)
from vggt_ros.bench.tokens import patch_grid, special_tokens, tokens_per_frame
from vggt_ros.model import MergingConfig, StreamVGGT, StreamVGGTConfig
from vggt_ros.model.merging import partition_frame, token_counts

MERGE_WINDOWS = (8, 32)
MERGE_TARGET, MERGE_TARGET_WINDOW = 2.0, 32  # issue 4: merging on >= 2x faster at window 32
MERGING = MergingConfig()  # the session's merging option, FastVGGT's settings


def merging_row(
    window: int,
    times: dict[str, dict[str, float]],
    cached_tokens: dict[str, int],
    flops: dict[str, float],
) -> dict[str, Any]:
    """One window's merging off vs on figures (sections 5a and 5b alike)."""
    return {
        'window': window,
        **{
            name: {'step_s': times[name], 'cached_tokens': cached_tokens[name]}
            for name in ('off', 'on')
        },
        'ratio': ratio(times['off'], times['on']),
        **flops,
    }


def merging_target(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether the off/on ratio reaches MERGE_TARGET at MERGE_TARGET_WINDOW (None: not run)."""
    measured = {row['window']: row['ratio'] for row in windows}.get(MERGE_TARGET_WINDOW)
    return {
        'window': MERGE_TARGET_WINDOW,
        'target': MERGE_TARGET,
        'ratio': measured,
        'met': None if measured is None else measured >= MERGE_TARGET,
    }


def block_merging(
    config: StreamVGGTConfig,
    image_size: tuple[int, int],
    windows: tuple[int, ...],
    repeats: int,
    merging: MergingConfig = MERGING,
    seed: int = 0,
) -> dict[str, Any]:
    """Section 5a: one global block's step with a full window W, merging off (anchor + W - 1
    whole frames) vs on (anchor whole + W - 1 merged frames; the new frame merged by the
    session's code path: Block.forward with this frame's partition_frame as merger). The
    partition is drawn once per frame for all blocks and is left out of the block's time."""
    check_settings(windows, repeats)
    generator = torch.Generator().manual_seed(seed)
    block, x, rope = block_inputs(config, image_size, generator)
    tokens, (rows, cols) = x.shape[1], patch_grid(config, image_size)
    kept = token_counts(merging, rows, cols, special_tokens(config)).kept
    results = []
    with torch.inference_mode():
        for window in windows:
            caches = {
                'off': filled_cache([tokens] * window, config, generator),
                'on': filled_cache([tokens] + [kept] * (window - 1), config, generator),
            }
            merger = partition_frame(merging, rows, cols, special_tokens(config), window)
            steps = {
                'off': cached_step(block, x, rope, caches['off']),
                'on': cached_step(block, x, rope, caches['on'], merger),
            }
            times = time_in_turn(steps, repeats)
            cached_tokens = {name: cache.num_tokens for name, cache in caches.items()}
            flops = merging_flops(merging, config, image_size, window, depth=1)
            results.append(merging_row(window, times, cached_tokens, flops))
    return {
        'image_size': list(image_size),
        'tokens_per_frame': tokens,
        'kept_per_merged_frame': kept,
        'repeats': repeats,
        'windows': results,
        'target': merging_target(results),
    }


def merging_steps(
    model: StreamVGGT,
    image_size: tuple[int, int],
    windows: tuple[int, ...],
    repeats: int,
    merging: MergingConfig = MERGING,
    seed: int = 0,
) -> dict[str, Any]:
    """Section 5b: whole steps of two sessions with window W, merging off and on, streamed side by
    side; frame W + 1 (the window full, the first eviction) is timed with repeats."""
    check_settings(windows, repeats)
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(max(windows) + 1, 3, *image_size, generator=generator)
    results = []
    with torch.inference_mode():
        for window in windows:
            frame = window + 1
            lanes = {
                'off': Lane(model.new_session(window=window), Series(), frame),
                'on': Lane(model.new_session(window=window, merging=merging), Series(), frame),
            }
            for turn in range(1, frame + 1):
                step_lanes(lanes, images, repeats if turn == frame else 1, turn)
            times = {name: stats(lane.series.at(frame)) for name, lane in lanes.items()}
            cached_tokens = {
                name: lane.session.caches[0][0].num_tokens for name, lane in lanes.items()
            }
            flops = merging_flops(merging, model.config, image_size, window, model.config.depth)
            results.append(merging_row(window, times, cached_tokens, flops))
    return {
        'image_size': list(image_size),
        'tokens_per_frame': tokens_per_frame(model.config, image_size),
        'repeats': repeats,
        'windows': results,
    }
