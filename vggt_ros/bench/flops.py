"""The closed-form FLOP model of a streaming step, and how close a step comes to the machine's
dense matmul rate (section 6).

FLOPs count two per multiply-add of the linear layers, convolutions and attention (QK^T, PV);
norms, softmax, RoPE and activations are left out (a few percent).
"""

from __future__ import annotations

from typing import Any

import torch

from vggt_ros.bench.harness import time_in_turn
from vggt_ros.bench.tokens import patch_grid, special_tokens, tokens_per_frame
from vggt_ros.model import MergingConfig, StreamVGGTConfig
from vggt_ros.model.heads import DPT_HIDDEN
from vggt_ros.model.merging import global_attention_flops

MATMUL_SIZE = (1024, 1024, 4096)  # section 6: [m, k] @ [k, n], an MLP's shape


def block_flops(tokens: int, dim: int, mlp_ratio: float, attended: int) -> float:
    """One transformer block: `tokens` new tokens through qkv + proj (4·dim² weights) and the MLP
    (2·mlp_ratio·dim²), two FLOPs per multiply-add, plus QK^T and PV over `attended` tokens."""
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
