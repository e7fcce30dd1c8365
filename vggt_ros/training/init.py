"""Where a from-scratch run starts: PyTorch's initialisation, but patch tokens that know where
they are and residual branches that are heard.

StreamVGGT's modules are built to load checkpoints, so DINO's position embedding starts at zero
and the aggregator's and camera trunk's LayerScale gains at VGGT's 0.01. VGGT starts from a
pretrained DINO and trains for days; a short run from scratch does not get that far:

- From zero the position embedding stayed weak (0.4% of a patch token's norm after 5,573 steps).
  Without it a patch token carries what it shows but not where, and a frame's camera token cannot
  tell how far the content moved between frames, which is what a relative pose is. It starts as a
  2-D sine-cosine code of the patch grid (MAE's), at the patch embedding's own scale.
- From 0.01 the gains fell (to 0.008 after 4,222 steps, under weight decay and noisy gradients):
  every frame and global block added under 1% to its input, so no frame learned from another and
  the camera head's output did not depend on the images. They start at 1.0, as DINO's blocks do,
  and training does not decay them (train.parameter_groups).
"""

from __future__ import annotations

import math

import torch

from vggt_ros.model import StreamVGGT

FREQUENCY_BASE = 10_000.0
RESIDUAL_GAIN = 1.0  # DINO's LayerScale init; VGGT's 0.01 assumes a pretrained start


def sincos_position_code(grid: int, dim: int) -> torch.Tensor:
    """[grid * grid, dim]: half the channels code the row, half the column, each as sines and
    cosines of geometrically spaced frequencies."""
    if dim % 4:
        raise ValueError(f'a 2-D sine-cosine code needs dim divisible by 4, got {dim}')
    quarter = dim // 4
    frequencies = FREQUENCY_BASE ** (-torch.arange(quarter, dtype=torch.float64) / quarter)
    rows, cols = torch.meshgrid(
        torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64),
        indexing='ij',
    )  # fmt: skip

    def code(position: torch.Tensor) -> torch.Tensor:
        angles = position.reshape(-1, 1) * frequencies
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    return torch.cat([code(rows), code(cols)], dim=1).float()


def initialise_from_scratch(model: StreamVGGT) -> StreamVGGT:
    """Give `model` its from-scratch start, in place: DINO's position embedding a sine-cosine
    code, every LayerScale gain RESIDUAL_GAIN; returns it."""
    position = model.aggregator.patch_embed.pos_embed
    grid = math.isqrt(position.shape[1] - 1)
    with torch.no_grad():
        position[0, 1:] = sincos_position_code(grid, position.shape[-1])
        for name, parameter in model.named_parameters():
            if name.endswith('.gamma'):
                parameter.fill_(RESIDUAL_GAIN)
    return model
