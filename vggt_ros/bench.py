"""vggt-bench: streaming cost and key/value memory, as ratios measured side by side in one run.

Machines are noisy (this one is shared), so absolute times mean little: every figure is the
min/median/max over repeats of one step (each from a copy of the session's state), the sessions
compared are stepped in turn, frame by frame (noise hits them alike), and conclusions are ratios
of medians. Weights are random (the synthetic-weights recipe): timing does not depend on their
values. CPU only for now, so fp32 (what precision='auto' gives there).

Sections, per model (the 1B dimensions at a reduced resolution, the tiny preset at a larger one):
1. flat cost with a window: step time at frame 8*W vs frame W, window W and unbounded;
2. ours vs a reference-style step (raw K/V concatenated per frame, k-norm and RoPE re-applied to
   the whole cache every frame, as wzzheng/StreamVGGT does) at the same number of cached frames;
3. key/value bytes per frame and in total, ours vs the reference's 2*depth*dim*P bf16 values.

Whole steps are only affordable at tiny P, where DINO, the MLPs and the heads dominate; the cache
lives in the global blocks. So sections 4-5a time one global block at the 1B dimensions at a
realistic P (518x392 by default), its cache pre-filled with random keys and values:
4. ours vs the reference-style store at `cached` frames;
5. FastVGGT token merging on vs off at windows 8 and 32: (a) that block, beside the closed-form
   global-attention FLOPs; (b) whole steps of sessions streamed side by side (tiny preset).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vggt_ros.model import PRESETS as CONFIGS
from vggt_ros.model import MergingConfig, StreamSession, StreamVGGT, StreamVGGTConfig
from vggt_ros.model.heads import DPT_HIDDEN
from vggt_ros.model.kv_cache import KVCache, LayerKVCache
from vggt_ros.model.layers import Block, TokenMerger
from vggt_ros.model.merging import global_attention_flops, partition_frame, token_counts
from vggt_ros.model.rope import RopeTables, apply_rope, rope_tables, token_positions
from vggt_ros.model.synthetic_weights import synthetic_model

FLAT_FACTOR = 8  # section 1 compares frame FLAT_FACTOR * W with frame W
FLAT_TARGET = 1.1
BF16_BYTES = 2
PRESETS = ('streamvggt-1b', 'tiny')
BLOCK_PRESET = 'streamvggt-1b'  # sections 4 and 5a: one global block of these dimensions
MERGE_WINDOWS = (8, 32)
MERGE_TARGET, MERGE_TARGET_WINDOW = 2.0, 32  # issue 4: merging on >= 2x faster at window 32
MERGING = MergingConfig()  # the session's merging option, FastVGGT's settings
MATMUL_SIZE = (1024, 1024, 4096)  # section 6: [m, k] @ [k, n], an MLP's shape
GPU_SIZE, GPU_WINDOW, GPU_WARMUP = (518, 392), 16, 5  # section 9
MEMORY_SIZE, MEMORY_WINDOW = (28, 42), 16  # section 8
# Tuned so the default run takes about 4.5-6 minutes on 2 CPU cores, --quick about one minute.
DEFAULTS = dict(
    window=8,
    cached=64,
    repeats=5,
    tiny_repeats=15,
    block_repeats=5,
    warmup=2,
    size=(42, 70),
    tiny_size=(224, 308),
    block_size=(518, 392),
    memory_frames=2000,
    node_frames=20,
    gpu_frames=30,
    chaos_frames=10_000,
)
QUICK = dict(
    window=2,
    cached=16,
    repeats=3,
    tiny_repeats=5,
    block_repeats=3,
    warmup=1,
    size=(28, 42),
    tiny_size=(112, 154),
    block_size=(518, 154),
    memory_frames=400,
    node_frames=5,
    gpu_frames=10,
    chaos_frames=500,
)
# The reference-style step must give our outputs: same keys, values and kernels (so far bitwise).
EQUAL = dict(rtol=1e-5, atol=1e-6)


class ReferenceStyleLayer:
    """One global block's cache kept as the reference keeps it: [1, heads, frames, P, head_dim],
    grown by torch.cat every frame (a full re-allocation), with k-LayerNorm and RoPE re-applied to
    the whole cache every frame. Attention hands it keys already normalised and rotated, so that
    recomputation only costs what it costs the reference and the stored keys are returned."""

    def __init__(
        self, k_norm: nn.Module, rope: RopeTables, keys: Tensor | None, values: Tensor | None
    ) -> None:
        self.k_norm = k_norm
        self.rope = rope  # one frame's tables; tiled over all cached frames at each step
        self.keys = keys
        self.values = values
        self._before: tuple[Tensor | None, Tensor | None] | None = None

    @property
    def num_frames(self) -> int:
        return 0 if self.keys is None else self.keys.shape[2]

    @property
    def nbytes(self) -> int:
        return 0 if self.keys is None else self.keys.nbytes + self.values.nbytes

    @property
    def backup_nbytes(self) -> int:
        """Nothing is copied to undo a frame: torch.cat leaves the previous tensors intact."""
        return 0

    def new_frame(self) -> None:
        """Nothing to open (extend() concatenates the new frame); keep the tensors before it, so
        rollback() drops what the frame appended."""
        self._before = self.keys, self.values

    def commit(self) -> None:
        self._before = None

    def rollback(self) -> None:
        if self._before is not None:
            self.keys, self.values = self._before
        self._before = None

    def reset(self) -> None:
        self.keys = self.values = self._before = None

    def extend(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append one frame's k, v [1, heads, P, head_dim]; return all keys and values."""
        self.keys = _append_frame(self.keys, k)
        self.values = _append_frame(self.values, v)
        batch, heads, frames, tokens, head_dim = self.keys.shape
        keys = self.keys.reshape(batch, heads, frames * tokens, head_dim)
        apply_rope(self.k_norm(keys), self.rope.repeat(frames))  # the reference's per-frame cost
        return keys, self.values.reshape(batch, heads, frames * tokens, head_dim)


def _append_frame(cache: Tensor | None, x: Tensor) -> Tensor:
    x = x[:, :, None]
    return x if cache is None else torch.cat([cache, x], dim=2)


class ReferenceStyleCache(KVCache):
    """Drop-in for the session's global-block KVCache: no window, no preallocation."""

    def __init__(self, layers: list[ReferenceStyleLayer]) -> None:
        self.layers = layers


def reference_style_cache(
    model: StreamVGGT, image_size: tuple[int, int], source: KVCache | None = None
) -> ReferenceStyleCache:
    """A reference-style global-block cache, empty or holding a copy of `source`'s frames (an
    unbounded, unmerged cache of frames of `image_size`)."""
    rope = frame_rope(model.config, image_size, model.device)
    tokens = len(rope.cos)
    layers = []
    for index, block in enumerate(model.aggregator.global_blocks):
        keys = values = None
        if source is not None and source[index].num_frames:
            layer = source[index]
            keys, values = _by_frame(layer.keys, tokens), _by_frame(layer.values, tokens)
        layers.append(ReferenceStyleLayer(block.attn.k_norm, rope, keys, values))
    return ReferenceStyleCache(layers)


def _by_frame(flat: Tensor, tokens: int) -> Tensor:
    """[heads, frames * tokens, head_dim] -> a copy shaped [1, heads, frames, tokens, head_dim]."""
    heads, total, head_dim = flat.shape
    if total % tokens:
        raise ValueError(f'{total} cached tokens are not whole frames of {tokens}')
    return flat.reshape(1, heads, total // tokens, tokens, head_dim).clone()


def copy_session(session: StreamSession) -> StreamSession:
    """An independent copy of a session's state, caches included; the model is shared."""
    return copy.deepcopy(session, memo={id(session.model): session.model})


def fork_reference_style(session: StreamSession, image_size: tuple[int, int]) -> StreamSession:
    """A copy of an unbounded session at its current frame, its global blocks switched to a
    reference-style cache holding the same keys and values: the reference-style step is timed
    at many cached frames without streaming that history through the 1B model a second time."""
    twin = copy_session(session)
    twin._swap_global_cache(reference_style_cache(session.model, image_size, session.caches[0]))
    return twin


class NaiveWindow:
    """The naive approach users try first: keep the last W frames and re-run the whole model
    (forward_causal) on them for every new frame, answering with the last frame's outputs. It
    steps like a session, so the lanes machinery times it beside ours."""

    def __init__(self, model: StreamVGGT, window: int, history: Tensor) -> None:
        self.model = model
        self.window = window
        self.frames = list(history[len(history) - (window - 1) :])

    @property
    def cache_bytes(self) -> int:
        """What it keeps between frames: the images of the window."""
        return sum(frame.nbytes for frame in self.frames)

    def step(self, image: Tensor) -> dict[str, Tensor]:
        self.frames = [*self.frames, image][-self.window :]
        out = self.model.forward_causal(torch.stack(self.frames))
        return {name: value[-1] for name, value in out.items()}


@dataclass
class Series:
    """Per-frame measurements of one session, from `first_frame` on. Frame n (from 1) attends
    over n cached frames, the current one included (fewer once a window is full)."""

    first_frame: int = 1
    step_s: list[list[float]] = field(default_factory=list)  # per frame: one time per repeat
    cache_bytes: list[int] = field(default_factory=list)  # per frame, after it

    def at(self, frame: int) -> list[float]:
        return self.step_s[frame - self.first_frame]


@dataclass
class Lane:
    """A session stepped through the stream, up to and including frame `last_frame`."""

    session: StreamSession | NaiveWindow
    series: Series
    last_frame: int

    @property
    def next_frame(self) -> int:
        return self.series.first_frame + len(self.series.step_s)


def stats(values: list[float]) -> dict[str, float]:
    return {'min': min(values), 'median': statistics.median(values), 'max': max(values)}


def ratio(numerator: dict[str, float], denominator: dict[str, float]) -> float:
    return numerator['median'] / denominator['median']


def patch_grid(config: StreamVGGTConfig, image_size: tuple[int, int]) -> tuple[int, int]:
    rows, cols = (side // config.patch_size for side in image_size)
    return rows, cols


def special_tokens(config: StreamVGGTConfig) -> int:
    """Camera token and registers, ahead of the patches (the aggregator's patch_start_idx)."""
    return 1 + config.num_register_tokens


def tokens_per_frame(config: StreamVGGTConfig, image_size: tuple[int, int]) -> int:
    rows, cols = patch_grid(config, image_size)
    return special_tokens(config) + rows * cols


def frame_rope(
    config: StreamVGGTConfig, image_size: tuple[int, int], device: torch.device | None = None
) -> RopeTables:
    """The RoPE tables of one frame's tokens, as the aggregator builds them."""
    rows, cols = patch_grid(config, image_size)
    positions = token_positions(rows, cols, special_tokens(config), device)
    return rope_tables(positions, config.embed_dim // config.num_heads, config.rope_freq)


def check_settings(frames: tuple[int, ...], repeats: int) -> None:
    """Windows and cached frames hold the anchor and the new frame at least; one repeat at least."""
    if min(frames) < 2 or repeats < 1:
        raise ValueError(
            f'need windows and cached frames >= 2, repeats >= 1; got {frames}, {repeats}'
        )


def stream_length(window: int, cached: int) -> int:
    return max(FLAT_FACTOR * window, cached)


def timed(function: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = function(*args)
    return out, time.perf_counter() - start


def in_turn(names: list[str], shift: int) -> list[str]:
    """The order in which the things compared step: rotated by `shift`, so that none always goes
    first (or right after another's allocations)."""
    shift %= len(names)
    return names[shift:] + names[:shift]


def max_difference(actual: dict[str, Tensor], expected: dict[str, Tensor]) -> float:
    """Largest absolute difference; raises if any output is not equal (to float rounding)."""
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, **EQUAL, msg=f'{name} differs')
    return max((actual[name] - value).abs().max().item() for name, value in expected.items())


def step_lanes(lanes: dict[str, Lane], images: Tensor, repeats: int, turn: int) -> float:
    """Step each lane's next frame, in turn (who goes first rotates with `turn`). With repeats > 1
    each lane steps that frame `repeats` times, every time from a fresh copy of its state, and
    goes on from the last copy. Returns the largest reference-style vs ours output difference."""
    names = list(lanes)
    states = {name: lane.session for name, lane in lanes.items()}
    times: dict[str, list[float]] = {name: [] for name in names}
    difference = 0.0
    for repeat in range(repeats):
        outputs = {}
        for name in in_turn(names, turn + repeat):
            lane = lanes[name]
            lane.session = copy_session(states[name]) if repeats > 1 else states[name]
            outputs[name], seconds = timed(lane.session.step, images[lane.next_frame - 1])
            times[name].append(seconds)
        if 'reference' in outputs:
            difference = max(difference, max_difference(outputs['reference'], outputs['unbounded']))
    for name, lane in lanes.items():
        lane.series.step_s.append(times[name])
        lane.series.cache_bytes.append(lane.session.cache_bytes)
    return difference


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
    """All sections for one model at one image size."""
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


def global_block(config: StreamVGGTConfig) -> Block:
    """A global block as the aggregator builds it (QK-LayerNorm), with PyTorch's random init:
    timing does not depend on the weights."""
    block = Block(config.embed_dim, config.num_heads, config.mlp_ratio, qk_norm=True)
    return block.eval().requires_grad_(False)


def filled_cache(
    frame_tokens: list[int], config: StreamVGGTConfig, generator: torch.Generator
) -> LayerKVCache:
    """A full window (window = len(frame_tokens) frames, anchor first) of random keys and values:
    stepping that history through the block would give other values, not other times. Each
    timed step then evicts the oldest frame and appends one of the same size, so every repeat
    finds the same state (and pays our eviction, one frame's copy)."""
    heads = config.num_heads
    cache = LayerKVCache(window=len(frame_tokens))
    for tokens in frame_tokens:
        cache.new_frame()
        cache.extend(
            *torch.randn(2, 1, heads, tokens, config.embed_dim // heads, generator=generator)
        )
    return cache


def cached_step(
    block: Block,
    x: Tensor,
    rope: RopeTables,
    cache: LayerKVCache,
    merger: TokenMerger | None = None,
) -> Callable[[], Tensor]:
    """One frame through the block as a session steps it: open the frame, attend via the cache."""

    def step() -> Tensor:
        cache.new_frame()
        return block(x, rope, cache=cache, merger=merger)

    return step


def reference_step(
    block: Block, x: Tensor, rope: RopeTables, keys: Tensor, values: Tensor
) -> Callable[[], Tensor]:
    """One frame through the block with a reference-style store of the earlier frames' keys and
    values [1, heads, frames, P, head_dim]. torch.cat leaves those untouched, so a fresh store
    over them restores the state for every repeat without a copy."""

    def step() -> Tensor:
        return block(x, rope, cache=ReferenceStyleLayer(block.attn.k_norm, rope, keys, values))

    return step


def time_in_turn(steps: dict[str, Callable[[], Any]], repeats: int) -> dict[str, dict[str, float]]:
    """Each step once untimed (first-touch allocations), then `repeats` times, the steps taking
    turns (who goes first rotating) so that the machine's load hits them alike."""
    names = list(steps)
    for step in steps.values():
        step()
    times: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        for name in in_turn(names, repeat):
            times[name].append(timed(steps[name])[1])
    return {name: stats(values) for name, values in times.items()}


def block_inputs(
    config: StreamVGGTConfig, image_size: tuple[int, int], generator: torch.Generator
) -> tuple[Block, Tensor, RopeTables]:
    """A global block, a new frame's tokens x [1, P, dim] and its RoPE tables."""
    tokens = tokens_per_frame(config, image_size)
    x = torch.randn(1, tokens, config.embed_dim, generator=generator)
    return global_block(config), x, frame_rope(config, image_size)


def block_vs_reference(
    config: StreamVGGTConfig,
    image_size: tuple[int, int],
    cached: int,
    repeats: int,
    seed: int = 0,
) -> dict[str, Any]:
    """Section 4: one global block's step at frame `cached` (attending over `cached` frames, the
    new one included), ours (window = `cached`, full) vs the reference-style store."""
    check_settings((cached,), repeats)
    generator = torch.Generator().manual_seed(seed)
    block, x, rope = block_inputs(config, image_size, generator)
    tokens = x.shape[1]
    with torch.inference_mode():
        cache = filled_cache([tokens] * cached, config, generator)
        earlier = (flat[:, : (cached - 1) * tokens] for flat in (cache.keys, cache.values))
        keys, values = (_by_frame(flat, tokens) for flat in earlier)
        times = time_in_turn(
            {
                'ours': cached_step(block, x, rope, cache),
                'reference': reference_step(block, x, rope, keys, values),
            },
            repeats,
        )
    return {
        'image_size': list(image_size),
        'tokens_per_frame': tokens,
        'cached_frames': cached,
        'cached_tokens': cache.num_tokens,
        'repeats': repeats,
        'ours_s': times['ours'],
        'reference_s': times['reference'],
        'ratio': ratio(times['reference'], times['ours']),
    }


def merging_flops(
    merging: MergingConfig,
    config: StreamVGGTConfig,
    image_size: tuple[int, int],
    window: int,
    depth: int,
) -> dict[str, float]:
    """Closed-form global-attention FLOPs of a new frame over `depth` blocks, off and on."""
    rows, cols = patch_grid(config, image_size)
    off, on = (
        global_attention_flops(
            option, rows, cols, window, config.embed_dim, depth, special_tokens(config)
        )
        for option in (None, merging)
    )
    return {'flops_off': off, 'flops_on': on, 'flops_ratio': off / on}


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


def block_flops(tokens: int, dim: int, mlp_ratio: float, attended: int) -> float:
    """One transformer block: `tokens` new tokens through qkv + proj (4·dim² weights) and the MLP
    (2·mlp_ratio·dim²), two FLOPs per multiply-add, plus QK^T and PV over `attended` tokens.
    Norms, softmax, RoPE and activations are left out (a few percent)."""
    return 2 * tokens * (4 + 2 * mlp_ratio) * dim**2 + 4 * tokens * attended * dim


def dpt_flops(config: StreamVGGTConfig, image_size: tuple[int, int], output_dim: int) -> float:
    """One DPT head's convolutions per frame, by the positions each stage runs at (levels at 16,
    4, 1 and 1/4 times the patch grid's positions): 1x1 projections of the 2·dim tokens, the
    resizing (transposed) convolutions, 3x3 layer_rn, two 3x3 convs per residual unit (two units
    per fusion level, one at the coarsest) and the 1x1 out_conv after its 2x upsampling,
    output_conv1 at 4x the finest level, output_conv2 at full resolution. Biases, upsampling
    and activations are left out; test_bench checks the total against a counted run."""
    rows, cols = patch_grid(config, image_size)
    grid, pixels = rows * cols, image_size[0] * image_size[1]
    scales = (16, 4, 1, 1 / 4)
    units = (2, 2, 2, 1)
    channels, features = config.dpt_out_channels, config.dpt_features
    project = 2 * grid * 2 * config.embed_dim * sum(channels)
    resize = 2 * grid * (16 * channels[0] ** 2 + 4 * channels[1] ** 2 + 9 / 4 * channels[3] ** 2)
    levels = list(zip(scales, channels, units, strict=True))
    layer_rn = sum(2 * scale * grid * 9 * c * features for scale, c, _ in levels)
    fusion = sum(2 * scale * grid * (2 * unit * 9 + 4) * features**2 for scale, _, unit in levels)
    output = 2 * 64 * grid * 9 * features * features // 2
    output += 2 * pixels * (9 * features // 2 * DPT_HIDDEN + DPT_HIDDEN * output_dim)
    return project + resize + layer_rn + fusion + output


def model_flops(config: StreamVGGTConfig, image_size: tuple[int, int], frames: int) -> dict:
    """Closed-form FLOPs of one streaming step attending over `frames` cached frames (the new
    one included), by part: DINO, frame blocks, global blocks, camera head, two DPT heads."""
    tokens, dim, mlp = tokens_per_frame(config, image_size), config.embed_dim, config.mlp_ratio
    rows, cols = patch_grid(config, image_size)
    trunk = config.camera_trunk_depth * config.camera_iterations
    parts = {
        'dino': config.dino_depth * block_flops(tokens, dim, mlp, tokens)
        + 2 * rows * cols * 3 * config.patch_size**2 * dim,
        'frame_blocks': config.depth * block_flops(tokens, dim, mlp, tokens),
        'global_blocks': config.depth * block_flops(tokens, dim, mlp, frames * tokens),
        'camera_head': trunk * block_flops(1, 2 * dim, mlp, frames * config.camera_iterations),
        'dpt_heads': dpt_flops(config, image_size, 4) + dpt_flops(config, image_size, 2),
    }
    return {**parts, 'total': sum(parts.values())}


def matmul_throughput(repeats: int, size: tuple[int, int, int] = MATMUL_SIZE) -> dict[str, Any]:
    """The machine's dense fp32 torch.mm rate, FLOP/s, on an MLP-like [m, k] @ [k, n]: the limit
    that efficiency is judged against, measured in this run (same threads, same load)."""
    m, k, n = size
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(m, k, generator=generator), torch.randn(k, n, generator=generator)
    times = time_in_turn({'mm': lambda: torch.mm(a, b)}, repeats)['mm']
    flops = 2 * m * k * n
    return {'size': list(size), 'mm_s': times, 'flops_per_s': flops / times['median']}


def efficiency(
    config: StreamVGGTConfig,
    image_size: tuple[int, int],
    frames: int,
    step_s: dict[str, float],
    matmul: dict[str, Any],
) -> dict[str, Any]:
    """Section 6: closed-form FLOPs per frame over the median step time, as a fraction of the
    measured matmul rate: how close a step comes to what the machine can do."""
    flops = model_flops(config, image_size, frames)
    achieved = flops['total'] / step_s['median']
    return {
        'frames_attended': frames,
        'flops': flops,
        'step_s': step_s,
        'achieved_flops_per_s': achieved,
        'fraction_of_matmul': achieved / matmul['flops_per_s'],
    }


def rss_bytes() -> int:
    """This process's resident set size now (Linux /proc; elsewhere the peak from resource)."""
    try:
        pages = int(Path('/proc/self/statm').read_text().split()[1])
        return pages * os.sysconf('SC_PAGE_SIZE')
    except OSError:
        import resource  # noqa: PLC0415 - only where /proc is missing

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def slope(values: list[float]) -> float:
    """Least-squares growth per frame over the second half of `values` (the window full)."""
    half = values[len(values) // 2 :]
    return float(np.polyfit(np.arange(len(half)), np.asarray(half, dtype=float), 1)[0])


def memory_growth(
    model: StreamVGGT, image_size: tuple[int, int], window: int, frames: int, seed: int = 0
) -> dict[str, Any]:
    """Section 8: RSS and cache bytes after every frame of a long windowed stream; once the
    window is full nothing should grow. Eight distinct images cycle (no 2000-image tensor)."""
    if frames < 4 * window:
        raise ValueError(f'need frames >= 4 * window to fit a slope, got {frames}, {window}')
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(8, 3, *image_size, generator=generator)
    session = model.new_session(window=window)
    rss, cache = [], []
    with torch.inference_mode():
        for frame in range(frames):
            session.step(images[frame % len(images)])
            rss.append(rss_bytes())
            cache.append(session.cache_bytes)
    return {
        'image_size': list(image_size),
        'window': window,
        'frames': frames,
        'rss_first_last': [rss[0], rss[-1]],
        'cache_first_last': [cache[0], cache[-1]],
        'rss_slope_bytes_per_frame': slope(rss),
        'cache_slope_bytes_per_frame': slope(cache),
    }


def gpu_frames_per_s(frames: int, size: tuple[int, int] = GPU_SIZE) -> dict[str, Any]:
    """Section 9: the 1B preset at 518x392 in bf16 on the GPU, frames/s of a windowed stream
    after warm-up; skipped (and said so) without CUDA."""
    if not torch.cuda.is_available():
        return {'skipped': 'no CUDA device: the 1B bf16 run needs a GPU'}
    model = synthetic_model(BLOCK_PRESET).to('cuda')
    session = model.new_session(window=GPU_WINDOW, precision='bf16')
    images = torch.rand(GPU_WINDOW, 3, *size, device='cuda')
    times = []
    with torch.inference_mode():
        for frame in range(GPU_WARMUP + frames):
            torch.cuda.synchronize()
            start = time.perf_counter()
            session.step(images[frame % len(images)])
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    step_s = stats(times[GPU_WARMUP:])
    return {
        'device': torch.cuda.get_device_name(),
        'image_size': list(size),
        'window': GPU_WINDOW,
        'frames': frames,
        'step_s': step_s,
        'frames_per_s': 1 / step_s['median'],
    }


def chaos_soak(model: StreamVGGT, frames: int, seed: int = 0) -> dict[str, Any]:
    """Section 10: the node through bad frames, resets and parameter flips (bench_node); skipped,
    and said so, where rclpy cannot be imported."""
    try:
        from vggt_ros import bench_node  # noqa: PLC0415 - needs rclpy
    except ImportError as error:
        return {'skipped': f'rclpy not importable: {error}'}
    return bench_node.chaos_soak(model, frames, seed)


def node_overhead(
    model: StreamVGGT, repeats: int, frames: int, results: list[dict[str, Any]]
) -> dict[str, Any]:
    """Section 7: the node's publishing cost per frame at 518x392, over the 1B step at that size
    (closed-form FLOPs at the rate the 1B run achieved in section 6: an estimate, since that step
    takes tens of seconds on a CPU), and end-to-end latency minus model time (tiny preset, real
    rclpy). Skipped, and said so, where rclpy cannot be imported."""
    try:
        from vggt_ros import bench_node  # noqa: PLC0415 - needs rclpy
    except ImportError as error:
        return {'skipped': f'rclpy not importable: {error}'}
    section = {'publishing': bench_node.publish_overhead(repeats)}
    big = next((result for result in results if result['preset'] == BLOCK_PRESET), None)
    if big is not None:
        rate = big['efficiency']['achieved_flops_per_s']
        config = CONFIGS[BLOCK_PRESET]
        step = model_flops(config, bench_node.CLOUD_SIZE, big['window'])['total'] / rate
        section['model_step_estimate_s'] = step
        section['fraction_of_step'] = section['publishing']['total_s']['median'] / step
    width = bench_node.CLOUD_SIZE[1]
    reconstructor = bench_node.RecordingReconstructor(model, image_width=width)
    section['end_to_end'] = bench_node.end_to_end(reconstructor, bench_node.CLOUD_SIZE, frames)
    return section


def _ms(times: dict[str, float]) -> str:
    return ' / '.join(f'{1e3 * times[key]:.4g}' for key in ('min', 'median', 'max'))


def _mb(count: int) -> str:
    return f'{count / 1e6:.3g} MB'


def _label(result: dict[str, Any]) -> str:
    height, width = result['image_size']
    return f'{result["preset"]} {height}x{width}'


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown tables (what stdout and bench.md show)."""
    env = report['environment']
    results = report['results']
    lines = [
        '# vggt-bench',
        '',
        f'torch {env["torch"]}, {env["device"]}, {env["threads"]} threads, {env["platform"]}; '
        f'wall {report["wall_s"]:.0f} s; `{env["command"]}`',
        '',
        'Random weights, fp32. Step times in ms: min / median / max over repeats of the same '
        'step, each from a copy of the session state (repeats: '
        + ', '.join(f'{result["preset"]} {result["repeats"]}' for result in results)
        + '). Frame n attends over n cached frames, itself included (at most W with a window). '
        'The sessions compared are stepped in turn, frame by frame; ratios are of medians.',
        '',
        f'## 1. Flat cost with a window (target <= {FLAT_TARGET} with a window)',
        '',
        '| model | P | cache | at frame W | at frame 8·W | 8·W / W |',
        '|---|---|---|---|---|---|',
    ]
    for result in results:
        for name, cost in result['flat_cost'].items():
            cache = f'window {result["window"]}' if name == 'window' else 'unbounded'
            low, high = cost['step_s']
            lines.append(
                f'| {_label(result)} | {result["tokens_per_frame"]} | {cache} | {_ms(low)} '
                f'| {_ms(high)} | {cost["ratio"]:.2f} |'
            )
    lines += frame_n_markdown(results)
    lines += [
        '',
        '## 2. Ours vs a reference-style step (cat raw K/V, re-norm and re-rotate the cache)',
        '',
        '| model | P | cached frames | ours | reference-style | reference / ours | '
        'max abs output difference |',
        '|---|---|---|---|---|---|---|',
    ]
    for result in results:
        ref = result['reference']
        lines.append(
            f'| {_label(result)} | {result["tokens_per_frame"]} | {ref["frame"]} '
            f'| {_ms(ref["ours_s"])} | {_ms(ref["reference_s"])} | {ref["ratio"]:.2f} '
            f'| {ref["max_abs_difference"]:.1e} |'
        )
    lines += [
        '',
        '## 3. Key/value cache bytes (per frame: global blocks; totals: all caches)',
        '',
        '| model | P | ours per frame | ours in bf16 | reference bf16 (2·depth·dim·2 B·P) '
        '| ours window W, total | growth after fill | ours unbounded, total '
        '| reference bf16, total |',
        '|---|---|---|---|---|---|---|---|---|',
    ]
    for result in results:
        kv = result['kv_bytes']
        lines.append(
            f'| {_label(result)} | {result["tokens_per_frame"]} '
            f'| {_mb(kv["ours_per_frame"])} ({kv["ours_dtype"]}) '
            f'| {_mb(kv["ours_per_frame_bf16"])} '
            f'| {_mb(kv["reference_per_frame_bf16"])} '
            f'| {_mb(kv["window_total"])} (W={result["window"]}) '
            f'| {kv["window_growth_after_fill"]} B | {_mb(kv["unbounded_total"])} '
            f'({kv["frames"]} frames) | {_mb(kv["reference_total_bf16"])} ({kv["frames"]} frames) |'
        )
    lines += [
        '',
        "Ours unbounded is allocated by doubling (up to twice the frames held), in the run's "
        'dtype; the reference holds exactly its frames, in bf16 under autocast.',
    ]
    lines += block_markdown(report['global_block'])
    lines += merging_markdown(report['block_merging'], report['merging_steps'])
    lines += efficiency_markdown(report['matmul'], results)
    lines += node_markdown(report['node'])
    lines += memory_markdown(report['memory'])
    lines += gpu_markdown(report['gpu'])
    lines += chaos_markdown(report['chaos'])
    return '\n'.join(lines) + '\n'


def frame_n_markdown(results: list[dict[str, Any]]) -> list[str]:
    """Section 1's ratios at frame N: (a) window W, (b) unbounded, (c) reference-style, (d) naive
    (forward_causal over the last W frames for every frame)."""
    lines = [
        '',
        'At frame N = 8·W, stepped side by side: (a) window W, (b) unbounded, (d) naive; (c) the '
        "reference-style step beside (b) at section 2's frame.",
        '',
        '| model | N | (a) window | (b) unbounded | (d) naive | (b)/(a) | (c)/(b) at frame '
        '| (d)/(a) |',
        '|---|---|---|---|---|---|---|---|',
    ]
    for result in results:
        at = result['at_frame_n']
        lines.append(
            _row(
                _label(result),
                at['frame'],
                _ms(at['window_s']),
                _ms(at['unbounded_s']),
                _ms(at['naive_s']),
                f'{at["unbounded_over_window"]:.2f}',
                f'{at["reference_over_unbounded"]:.2f} at {at["reference_frame"]}',
                f'{at["naive_over_window"]:.2f}',
            )
        )
    return lines


def efficiency_markdown(matmul: dict[str, Any], results: list[dict[str, Any]]) -> list[str]:
    """Section 6's table."""
    m, k, n = matmul['size']
    lines = [
        '',
        '## 6. Efficiency: closed-form model FLOPs per frame / median step time, vs torch.mm',
        '',
        f'Dense fp32 torch.mm [{m}x{k}] @ [{k}x{n}]: {_ms(matmul["mm_s"])} ms = '
        f'{matmul["flops_per_s"] / 1e9:.3g} GFLOP/s. FLOPs: 2 per multiply-add of the linear '
        'layers, convolutions and attention (QK^T, PV); norms and activations left out. Step: '
        '(a) at frame N.',
        '',
        '| model | frames attended | GFLOP per frame (DINO / frame / global / camera / DPT) '
        '| median step | achieved GFLOP/s | fraction of torch.mm |',
        '|---|---|---|---|---|---|',
    ]
    for result in results:
        eff = result['efficiency']
        parts = ' / '.join(
            f'{value / 1e9:.3g}' for name, value in eff['flops'].items() if name != 'total'
        )
        lines.append(
            _row(
                _label(result),
                eff['frames_attended'],
                f'{eff["flops"]["total"] / 1e9:.3g} ({parts})',
                f'{1e3 * eff["step_s"]["median"]:.4g} ms',
                f'{eff["achieved_flops_per_s"] / 1e9:.3g}',
                f'{eff["fraction_of_matmul"]:.2f}',
            )
        )
    return lines


def node_markdown(node: dict[str, Any]) -> list[str]:
    """Section 7's table, or why it was skipped."""
    lines = ['', '## 7. Node overhead (real rclpy)', '']
    if 'skipped' in node:
        return [*lines, f'Skipped: {node["skipped"]}.']
    publishing, e2e = node['publishing'], node['end_to_end']
    height, width = publishing['image_size']
    fraction = (
        f' = {node["fraction_of_step"]:.3g} of a {BLOCK_PRESET} step at that size (estimated: '
        f"{node['model_step_estimate_s']:.3g} s from section 6's achieved rate)"
        if 'fraction_of_step' in node
        else ''
    )
    return [
        *lines,
        f'Per frame at {height}x{width}: depth + CameraInfo, organised cloud and TF, converted '
        f'{_ms(publishing["convert_s"])} ms, published {_ms(publishing["publish_s"])} ms, '
        f'total {_ms(publishing["total_s"])} ms{fraction}.',
        '',
        f'End to end (tiny preset, {e2e["frames"]} frames at {height}x{width}, one at a time): '
        f'image published -> TF received {_ms(e2e["latency_s"])} ms, model '
        f'{_ms(e2e["model_s"])} ms, the rest (transport, decode, preprocessing, outputs) '
        f'{_ms(e2e["overhead_s"])} ms.',
    ]


def chaos_markdown(chaos: dict[str, Any]) -> list[str]:
    """Section 10's figures, or why it was skipped."""
    lines = ['', '## 10. Chaos soak through the node (real rclpy, tiny preset, window 16)', '']
    if 'skipped' in chaos:
        return [*lines, f'Skipped: {chaos["skipped"]}.']
    counts, kinds = chaos['counts'], chaos['kinds']
    height, width = chaos['image_size']
    return [
        *lines,
        f'{chaos["frames"]} frames at {height}x{width}, 5% bad, a ~/reset every 500, a '
        'parameter flip every 250, time looping back 30 s every 1000; each frame awaited.',
        '',
        f'- stuck periods (a frame unaccounted for after 5 s): {chaos["stuck_periods"]} '
        f'(frames sent again: {chaos["resends"]})',
        f'- wait per frame, ms: {_ms(chaos["wait_s"])}',
        '- counts: ' + ', '.join(f'{name} {count}' for name, count in counts.items()),
        '- by kind: ' + ', '.join(f'{name} {count}' for name, count in sorted(kinds.items())),
        f'- RSS: {_mb(chaos["rss_first_last"][0])} -> {_mb(chaos["rss_first_last"][1])}, slope '
        f'over the second half {chaos["rss_slope_bytes_per_frame"]:.3g} B/frame',
        f'- distinct cache sizes after the window filled: '
        f'{chaos["cache_bytes_distinct_after_fill"]}',
    ]


def memory_markdown(memory: dict[str, Any]) -> list[str]:
    """Section 8's table."""
    height, width = memory['image_size']
    return [
        '',
        f'## 8. Memory over a long stream (tiny, {height}x{width}, window {memory["window"]}, '
        f'{memory["frames"]} frames)',
        '',
        'Slopes: least squares over the second half of the stream (window long full); want ~0.',
        '',
        '| | first frame | last frame | slope (B/frame) |',
        '|---|---|---|---|',
        _row(
            'RSS', *map(_mb, memory['rss_first_last']), f'{memory["rss_slope_bytes_per_frame"]:.3g}'
        ),
        _row(
            'KV cache',
            *map(_mb, memory['cache_first_last']),
            f'{memory["cache_slope_bytes_per_frame"]:.3g}',
        ),
    ]


def gpu_markdown(gpu: dict[str, Any]) -> list[str]:
    """Section 9: frames/s of the 1B preset on the GPU, or why it was skipped."""
    lines = ['', f'## 9. GPU: {BLOCK_PRESET} in bf16', '']
    if 'skipped' in gpu:
        return [*lines, f'Skipped: {gpu["skipped"]}.']
    height, width = gpu['image_size']
    return [
        *lines,
        f'{gpu["device"]}, {height}x{width}, window {gpu["window"]}, {gpu["frames"]} frames: '
        f'step {_ms(gpu["step_s"])} ms, **{gpu["frames_per_s"]:.3g} frames/s**.',
    ]


def _row(*cells: object) -> str:
    return '| ' + ' | '.join(str(cell) for cell in cells) + ' |'


def _block_label(section: dict[str, Any]) -> str:
    height, width = section['image_size']
    return f'{BLOCK_PRESET} global block, {height}x{width}'


def block_markdown(section: dict[str, Any]) -> list[str]:
    """Section 4's table."""
    return [
        '',
        '## 4. One global block at 1B dimensions: ours vs the reference-style store',
        '',
        'A new frame of P tokens through one global block (QK-norm, RoPE) against a cache '
        'pre-filled with random keys/values; ours with a full window of the cached frames (each '
        'step evicts one frame and appends one), the reference-style store concatenating and '
        're-normalising and re-rotating all cached keys. Repeats: '
        f'{section["repeats"]}, after one untimed step each.',
        '',
        '| block | P | cached frames | cached tokens | ours | reference-style | reference / ours |',
        '|---|---|---|---|---|---|---|',
        _row(
            _block_label(section),
            section['tokens_per_frame'],
            section['cached_frames'],
            section['cached_tokens'],
            _ms(section['ours_s']),
            _ms(section['reference_s']),
            f'{section["ratio"]:.2f}',
        ),
    ]


def _merging_cells(row: dict[str, Any]) -> list[str]:
    """The columns that sections 5a and 5b share, from the window on."""
    return [
        str(row['window']),
        f'{row["off"]["cached_tokens"]} / {row["on"]["cached_tokens"]}',
        _ms(row['off']['step_s']),
        _ms(row['on']['step_s']),
        f'{row["ratio"]:.2f}',
        f'{row["flops_off"] / 1e9:.4g} / {row["flops_on"] / 1e9:.4g} G = {row["flops_ratio"]:.2f}',
    ]


def _verdict(target: dict[str, Any]) -> str:
    if target['met'] is None:
        return f'Target not measured: window {target["window"]} was not run.'
    verdict = 'met' if target['met'] else 'NOT met'
    return (
        f'Target at window {target["window"]}: off / on = {target["ratio"]:.2f} '
        f'(>= {target["target"]:g} wanted): **{verdict}**.'
    )


def merging_markdown(block: dict[str, Any], steps: list[dict[str, Any]]) -> list[str]:
    """Section 5's tables: (a) one global block, (b) whole steps."""
    header = (
        '| {} | P | W | cached tokens off / on | off | on | off / on '
        '| global-attention FLOPs off / on (closed form) |'
    )
    lines = [
        '',
        f'## 5. Token merging on vs off (target: off / on >= {MERGE_TARGET:g} at window '
        f'{MERGE_TARGET_WINDOW} on the global-attention share)',
        '',
        '(a) One global block at 1B dimensions with a full window W, caches pre-filled as in 4: '
        'off = anchor + W-1 whole frames; on = anchor whole + W-1 merged frames of '
        f"{block['kept_per_merged_frame']} tokens, the new frame merged by the session's code "
        'path. The FLOPs count QK^T, PV and matching only; the times include qkv, proj and the '
        f'MLP on all P tokens. Repeats: {block["repeats"]}, after one untimed step each.',
        '',
        header.format('block'),
        '|---|---|---|---|---|---|---|---|',
    ]
    lines += [
        _row(_block_label(block), block['tokens_per_frame'], *_merging_cells(row))
        for row in block['windows']
    ]
    lines += ['', _verdict(block['target'])]
    if not steps:
        return lines
    lines += [
        '',
        '(b) Whole steps, for honesty: sessions with window W, merging off and on, streamed side '
        'by side; frame W+1 timed (repeats: '
        + ', '.join(f'{result["preset"]} {result["repeats"]}' for result in steps)
        + '). DINO, the frame blocks, the MLPs and the heads do not shrink with merging.',
        '',
        header.format('model'),
        '|---|---|---|---|---|---|---|---|',
    ]
    lines += [
        _row(_label(result), result['tokens_per_frame'], *_merging_cells(row))
        for result in steps
        for row in result['windows']
    ]
    return lines


def parse_size(text: str) -> tuple[int, int]:
    """'HxW' -> (H, W)."""
    try:
        height, width = (int(side) for side in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected HxW such as 42x70, got {text!r}') from None
    return height, width


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='vggt-bench', description=__doc__.split('\n')[0])
    parser.add_argument('--out', type=Path, default=Path('out/bench'), help='bench.json/.md here')
    parser.add_argument('--quick', action='store_true', help='smaller settings, about a minute')
    parser.add_argument('--window', type=int, help=f'W (default {DEFAULTS["window"]})')
    parser.add_argument(
        '--cached', type=int, help=f'cached frames for section 2 (default {DEFAULTS["cached"]})'
    )
    parser.add_argument('--repeats', type=int, help=f'steps per 1B figure ({DEFAULTS["repeats"]})')
    parser.add_argument(
        '--tiny-repeats', type=int, help=f'steps per tiny figure ({DEFAULTS["tiny_repeats"]})'
    )
    parser.add_argument(
        '--block-repeats', type=int, help=f'steps per block figure ({DEFAULTS["block_repeats"]})'
    )
    parser.add_argument('--warmup', type=int, help=f'untimed frames first ({DEFAULTS["warmup"]})')
    parser.add_argument('--size', type=parse_size, help='1B input HxW (default 42x70)')
    parser.add_argument('--tiny-size', type=parse_size, help='tiny input HxW (default 224x308)')
    parser.add_argument(
        '--block-size', type=parse_size, help='sections 4-5a frame HxW (default 518x392; 518x154)'
    )
    parser.add_argument('--presets', nargs='+', choices=PRESETS, default=list(PRESETS))
    parser.add_argument(
        '--merge-windows', nargs='+', type=int, default=list(MERGE_WINDOWS), help='section 5'
    )
    parser.add_argument(
        '--merge-presets',
        nargs='*',
        choices=PRESETS,
        default=['tiny'],
        help='whole-step merging (5b) with these presets at their sizes (default: tiny)',
    )
    parser.add_argument('--memory-frames', type=int, help='section 8 stream length (2000)')
    parser.add_argument('--node-frames', type=int, help='section 7 end-to-end frames (20)')
    parser.add_argument('--gpu-frames', type=int, help='section 9 timed frames (30)')
    parser.add_argument('--chaos-frames', type=int, help='section 10 chaos soak frames (10000)')
    parser.add_argument('--threads', type=int, help="torch threads (default: torch's own)")
    parser.add_argument('--seed', type=int, default=0, help='weights and images')
    args = parser.parse_args(argv)
    for name, default in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    return args


def environment(argv: list[str] | None) -> dict[str, Any]:
    return {
        'torch': torch.__version__,
        'device': 'cpu',
        'threads': torch.get_num_threads(),
        'cpu_count': os.cpu_count(),
        'platform': platform.platform(terse=True),
        'python': platform.python_version(),
        'command': ' '.join(['vggt-bench', *(sys.argv[1:] if argv is None else argv)]),
    }


def _progress(text: str) -> None:
    print(f'vggt-bench: {text}', file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    start = time.perf_counter()
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = {'streamvggt-1b': args.size, 'tiny': args.tiny_size}
    repeats = {'streamvggt-1b': args.repeats, 'tiny': args.tiny_repeats}
    windows = tuple(args.merge_windows)
    results, steps = [], []
    matmul = matmul_throughput(max(args.repeats, 3))
    for preset in dict.fromkeys([*args.presets, *args.merge_presets]):
        _progress(f'{preset} at {sizes[preset]}')
        model = synthetic_model(preset, args.seed)
        if preset in args.presets:
            result = bench_model(
                model,
                sizes[preset],
                args.window,
                args.cached,
                repeats[preset],
                args.warmup,
                args.seed,
            )
            step_s = result['at_frame_n']['window_s']
            result['efficiency'] = efficiency(
                model.config, sizes[preset], args.window, step_s, matmul
            )
            results.append({'preset': preset, **result})
        if preset in args.merge_presets:
            result = merging_steps(model, sizes[preset], windows, repeats[preset], seed=args.seed)
            steps.append({'preset': preset, **result})
        del model  # before the next preset is built: never two models in memory
    config = CONFIGS[BLOCK_PRESET]
    _progress(f'{BLOCK_PRESET} global block at {args.block_size}')
    block = block_vs_reference(config, args.block_size, args.cached, args.block_repeats, args.seed)
    merging = block_merging(config, args.block_size, windows, args.block_repeats, seed=args.seed)
    _progress('node overhead, memory, GPU')
    tiny = synthetic_model('tiny', args.seed)
    report = {
        'environment': environment(argv),
        'matmul': matmul,
        'node': node_overhead(tiny, args.tiny_repeats, args.node_frames, results),
        'memory': memory_growth(tiny, MEMORY_SIZE, MEMORY_WINDOW, args.memory_frames, args.seed),
        'gpu': gpu_frames_per_s(args.gpu_frames),
        'chaos': chaos_soak(tiny, args.chaos_frames, args.seed),
        'results': results,
        'global_block': block,
        'block_merging': merging,
        'merging_steps': steps,
        'wall_s': time.perf_counter() - start,
    }
    text = markdown(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / 'bench.json').write_text(json.dumps(report, indent=1) + '\n')
    (args.out / 'bench.md').write_text(text)
    print(text)


if __name__ == '__main__':
    main()
