"""Sections 1-3: whole sessions of one model streamed side by side over the same frames.

1. flat cost with a window: step time at frame 8*W vs frame W, window W and unbounded, and at
   frame 8*W the naive re-run window beside them;
2. ours vs a reference-style step (raw K/V concatenated per frame, k-norm and RoPE re-applied to
   the whole cache every frame, as wzzheng/StreamVGGT does) at the same number of cached frames;
3. key/value bytes per frame and in total, ours vs the reference's 2*depth*dim*P bf16 values.

Whole steps are only affordable at tiny P, where DINO, the MLPs and the heads dominate; the cache
lives in the global blocks, which sections 4-5a time alone at a realistic P.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch
from torch import Tensor

from vggt_ros.bench.baselines import NaiveWindow, fork_reference_style
from vggt_ros.bench.harness import (
    Lane,
    Series,
    check_settings,
    copy_session,
    ratio,
    stats,
    step_lanes,
)
from vggt_ros.bench.tokens import tokens_per_frame
from vggt_ros.model import StreamVGGT

FLAT_FACTOR = 8  # section 1 compares frame FLAT_FACTOR * W with frame W
FLAT_TARGET = 1.1
BF16_BYTES = 2


def stream_length(window: int, cached: int) -> int:
    return max(FLAT_FACTOR * window, cached)


def run_streams(
    model: StreamVGGT, images: Tensor, window: int, cached: int, repeats: int
) -> tuple[dict[str, Lane], float]:
    """Step every section's sessions over the same frames, in turn, so that each ratio compares
    times taken side by side: 'window' (window W) and 'unbounded' run from frame 1; copies of them
    made before frame W ('window_at_W', 'unbounded_at_W') wait and step frame W while the
    originals step frame 8*W, beside 'naive' (forward_causal over the last W frames, joining
    there: it keeps no state but the images); 'reference' is forked from 'unbounded' before
    frame `cached` and steps it beside it. Those timed frames are repeated. Returns the lanes
    and the largest reference-style vs ours output difference."""
    flat, size = FLAT_FACTOR * window, tuple(images.shape[-2:])
    lanes = {
        'window': Lane(model.new_session(window=window), Series(), flat),
        'unbounded': Lane(model.new_session(), Series(), stream_length(window, cached)),
    }
    parked = {}
    difference = 0.0
    for frame in range(1, stream_length(window, cached) + 1):
        if frame == window:
            parked = {
                f'{name}_at_W': Lane(copy_session(lanes[name].session), Series(frame), frame)
                for name in ('window', 'unbounded')
            }
        if frame == flat:
            lanes.update(parked)
            naive = NaiveWindow(model, window, images[: frame - 1])
            lanes['naive'] = Lane(naive, Series(frame), frame)
        if frame == cached:
            fork = fork_reference_style(lanes['unbounded'].session, size)
            lanes['reference'] = Lane(fork, Series(frame), frame)
        active = {name: lane for name, lane in lanes.items() if lane.next_frame <= lane.last_frame}
        timed = repeats if frame in (flat, cached) else 1
        difference = max(difference, step_lanes(active, images, timed, frame))
    return lanes, difference


def flat_cost(lanes: dict[str, Lane], window: int) -> dict[str, Any]:
    """Section 1: step time at frame 8*W over frame W, with window W and unbounded."""
    frames = [window, FLAT_FACTOR * window]
    result = {}
    for name in ('window', 'unbounded'):
        low = stats(lanes[f'{name}_at_W'].series.at(window))
        high = stats(lanes[name].series.at(frames[1]))
        result[name] = {'frames': frames, 'step_s': [low, high], 'ratio': ratio(high, low)}
    return result


def at_frame_n(lanes: dict[str, Lane], window: int, reference: dict[str, Any]) -> dict[str, Any]:
    """Section 1's ratios at frame N = 8*W: (a) window W, (b) unbounded, (d) naive, all stepped
    side by side there; (c) the reference-style step beside (b) at section 2's frame."""
    frame = FLAT_FACTOR * window
    times = {name: stats(lanes[name].series.at(frame)) for name in ('window', 'unbounded', 'naive')}
    return {
        'frame': frame,
        **{f'{name}_s': figure for name, figure in times.items()},
        'unbounded_over_window': ratio(times['unbounded'], times['window']),
        'reference_over_unbounded': reference['ratio'],
        'reference_frame': reference['frame'],
        'naive_over_window': ratio(times['naive'], times['window']),
    }


def reference_cost(lanes: dict[str, Lane], cached: int, difference: float) -> dict[str, Any]:
    """Section 2: reference-style step time over ours, both with `cached` frames in the cache."""
    ours = stats(lanes['unbounded'].series.at(cached))
    reference = stats(lanes['reference'].series.at(cached))
    return {
        'frame': cached,
        'ours_s': ours,
        'reference_s': reference,
        'ratio': ratio(reference, ours),
        'max_abs_difference': difference,
    }


def kv_bytes(model: StreamVGGT, lanes: dict[str, Lane], tokens: int) -> dict[str, Any]:
    """Section 3: global-block cache bytes per frame (ours: allocated for a full window, divided
    by its frames) and the totals of all caches, ours bounded and unbounded."""
    windowed, unbounded = lanes['window'].session, lanes['unbounded'].session
    reference_style = lanes['reference'].session.caches[0]
    keys = windowed.caches[0][0].keys
    ours = windowed.caches[0].nbytes // windowed.window_fill
    reference_bf16 = 2 * model.config.depth * model.config.embed_dim * BF16_BYTES * tokens
    window_bytes = lanes['window'].series.cache_bytes
    return {
        'ours_per_frame': ours,
        'ours_dtype': str(keys.dtype).removeprefix('torch.'),
        'ours_per_frame_bf16': ours * BF16_BYTES // keys.element_size(),
        'reference_per_frame_bf16': reference_bf16,
        'reference_style_per_frame': reference_style.nbytes // reference_style.num_frames,
        'window_total': windowed.cache_bytes,
        'window_growth_after_fill': window_bytes[-1] - window_bytes[windowed.window - 1],
        'frames': unbounded.frames_seen,
        'unbounded_total': unbounded.cache_bytes,
        'reference_total_bf16': reference_bf16 * unbounded.frames_seen,
    }


def bench_model(
    model: StreamVGGT,
    image_size: tuple[int, int],
    window: int,
    cached: int,
    repeats: int,
    warmup: int,
    seed: int = 0,
) -> dict[str, Any]:
    """Sections 1-3 for one model at one image size."""
    check_settings((window, cached), repeats)
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(stream_length(window, cached), 3, *image_size, generator=generator)
    with torch.inference_mode():
        warm = model.new_session()
        for image in images[:warmup]:
            warm.step(image)
        lanes, difference = run_streams(model, images, window, cached, repeats)
        tokens = tokens_per_frame(model.config, image_size)
        reference = reference_cost(lanes, cached, difference)
        return {
            'image_size': list(image_size),
            'tokens_per_frame': tokens,
            'window': window,
            'cached': cached,
            'repeats': repeats,
            'flat_cost': flat_cost(lanes, window),
            'reference': reference,
            'at_frame_n': at_frame_n(lanes, window, reference),
            'kv_bytes': kv_bytes(model, lanes, tokens),
            'series': {name: asdict(lane.series) for name, lane in lanes.items()},
        }
