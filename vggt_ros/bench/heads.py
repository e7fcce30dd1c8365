"""Section 11: heads on demand. The node and the evaluator unproject depth, so the Reconstructor
runs only the camera and depth heads; this measures what the point head would add, with two
sessions of one model stepped in turn, frame by frame: the heads needed vs all three.
"""

from __future__ import annotations

from typing import Any

import torch

from vggt_ros.bench.flops import dpt_flops, model_flops
from vggt_ros.bench.harness import check_settings, in_turn, max_difference, ratio, stats, timed
from vggt_ros.bench.tokens import tokens_per_frame
from vggt_ros.model import StreamVGGT
from vggt_ros.stream_types import HEADS, RECONSTRUCTOR_HEADS

HEADS_WINDOW = 8
FLOAT32_BYTES = 4
POINT_OUTPUTS = ('world_points', 'world_points_conf')


def heads_on_demand(
    model: StreamVGGT,
    image_size: tuple[int, int],
    frames: int,
    window: int = HEADS_WINDOW,
    seed: int = 0,
) -> dict[str, Any]:
    """Sessions with heads=RECONSTRUCTOR_HEADS ('needed') and all HEADS ('all') fill a window of
    `window` frames untimed, then step `frames` more, timed (the window full: every frame evicts
    one, so all timed frames cost the same). Both must agree on the outputs they share. The
    closed-form FLOPs say what the ratio would be if time followed them."""
    check_settings((window,), frames)
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(window + frames, 3, *image_size, generator=generator)
    sessions = {
        'needed': model.new_session(window=window, heads=RECONSTRUCTOR_HEADS),
        'all': model.new_session(window=window, heads=HEADS),
    }
    times: dict[str, list[float]] = {name: [] for name in sessions}
    difference = 0.0
    with torch.inference_mode():
        for index, image in enumerate(images):
            outputs = {}
            for name in in_turn(list(sessions), index):
                outputs[name], seconds = timed(sessions[name].step, image)
                if index >= window:
                    times[name].append(seconds)
            difference = max(difference, max_difference(outputs['all'], outputs['needed']))
    point_bytes = sum(outputs['all'][name].numel() * FLOAT32_BYTES for name in POINT_OUTPUTS)
    step_s = {name: stats(values) for name, values in times.items()}
    every = model_flops(model.config, image_size, window)['total']
    point = dpt_flops(model.config, image_size, output_dim=4)  # the point head's DPT
    return {
        'image_size': list(image_size),
        'tokens_per_frame': tokens_per_frame(model.config, image_size),
        'window': window,
        'frames': frames,
        'heads': {'needed': list(RECONSTRUCTOR_HEADS), 'all': list(HEADS)},
        'needed_s': step_s['needed'],
        'all_s': step_s['all'],
        'all_over_needed': ratio(step_s['all'], step_s['needed']),
        'flops_all_over_needed': every / (every - point),
        'point_host_bytes_per_frame': point_bytes,
        'max_abs_difference': difference,
    }
