"""Where a from-scratch run starts: PyTorch's initialisation, but patch tokens that know where
they are.

StreamVGGT's modules are built to load checkpoints, so DINO's position embedding starts at zero.
VGGT starts from a pretrained DINO whose position embedding is strong; from zero it stays weak
(measured on a model trained 5,573 steps: 0.4% of a patch token's norm). Without it a patch token
carries what it shows but not where, and a frame's camera token cannot tell how far the content
moved between frames, which is what a relative pose is. A from-scratch run starts the embedding
as a 2-D sine-cosine code of the patch grid (MAE's), at the patch embedding's own scale.

The aggregator's and camera trunk's LayerScale gains start at VGGT's 0.01 unless a run asks for
another start (`vggt-train --residual-gain`): from 0.01 a short CPU run's gains fell to 0.008, so
its frame and global blocks added under 1% to their input (docs/training-experiments.md).
"""

from __future__ import annotations

import math

import torch

from vggt_ros.model import StreamVGGT

FREQUENCY_BASE = 10_000.0
VGGT_RESIDUAL_GAIN = 0.01  # VGGT's LayerScale start, which assumes a pretrained DINO
DINO_PREFIX = 'aggregator.patch_embed.'  # DINO's own blocks start their gains at 1.0


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


def initialise_from_scratch(
    model: StreamVGGT, residual_gain: float = VGGT_RESIDUAL_GAIN
) -> StreamVGGT:
    """Give `model` its from-scratch start, in place: DINO's position embedding a sine-cosine
    code, the LayerScale gains of the frame, global and camera-trunk blocks `residual_gain`;
    returns it."""
    position = model.aggregator.patch_embed.pos_embed
    grid = math.isqrt(position.shape[1] - 1)
    with torch.no_grad():
        position[0, 1:] = sincos_position_code(grid, position.shape[-1])
        for name, parameter in model.named_parameters():
            if name.endswith('.gamma') and not name.startswith(DINO_PREFIX):
                parameter.fill_(residual_gain)
    return model
