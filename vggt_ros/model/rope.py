"""2-D rotary position embedding of the aggregator (VGGT's RoPE2D, base frequency 100).

The first half of each head vector is rotated by the token's row, the second half by its column,
each in rotate-half form. Positions are spatial only: every frame uses the same ones, which is why
keys can be cached already rotated.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class RopeTables(NamedTuple):
    """cos/sin per token and head channel, [N, head_dim]; applied to q and k alike."""

    cos: Tensor
    sin: Tensor

    def repeat(self, times: int) -> RopeTables:
        """Tables for `times` frames laid end to end (global attention over a sequence)."""
        return RopeTables(self.cos.repeat(times, 1), self.sin.repeat(times, 1))


def token_positions(
    height: int, width: int, num_special: int, device: torch.device | None = None
) -> Tensor:
    """(row, col) per token, [num_special + height*width, 2].

    Special tokens sit at (0, 0), i.e. are not rotated; patches count from (1, 1), row-major.
    """
    rows, cols = torch.meshgrid(
        torch.arange(height, device=device), torch.arange(width, device=device), indexing='ij'
    )
    patches = torch.stack([rows.reshape(-1), cols.reshape(-1)], dim=-1) + 1
    return torch.cat([patches.new_zeros(num_special, 2), patches])


def rope_tables(positions: Tensor, head_dim: int, base: float) -> RopeTables:
    """fp32 cos/sin tables for integer (row, col) positions [N, 2]."""
    half = head_dim // 2
    inv_freq = 1.0 / base ** (torch.arange(0, half, 2, device=positions.device).float() / half)
    halves = []
    for axis in range(2):
        angles = positions[:, axis].float()[:, None] * inv_freq[None]
        halves.append(torch.cat([angles, angles], dim=-1))
    angles = torch.cat(halves, dim=-1)
    return RopeTables(angles.cos(), angles.sin())


def apply_rope(x: Tensor, tables: RopeTables) -> Tensor:
    """Rotate x [..., N, head_dim]; rotate-half within each of the two axis halves."""
    q1, q2, q3, q4 = x.chunk(4, dim=-1)
    rotated = torch.cat([-q2, q1, -q4, q3], dim=-1)
    return x * tables.cos.to(x.dtype) + rotated * tables.sin.to(x.dtype)
