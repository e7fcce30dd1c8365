"""DINOv2 ViT with register tokens: the aggregator's patch embedding (ViT-L/14-reg in the 1B model).

Only the normalised patch tokens leave this module; DINO's cls and register outputs are dropped.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vggt_ros.model.layers import Block

DINO_NORM_EPS = 1e-6


class PatchEmbed(nn.Module):
    """Non-overlapping patch_size x patch_size convolution -> [N, h*w, dim] tokens (row-major)."""

    def __init__(self, patch_size: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: Tensor) -> Tensor:
        return self.proj(images).flatten(2).transpose(1, 2)


class DinoVisionTransformer(nn.Module):
    """[N, 3, H, W] normalised images -> [N, (H/p)*(W/p), dim] normalised patch tokens."""

    def __init__(
        self,
        img_size: int,
        patch_size: int,
        dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        num_register_tokens: int = 4,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        grid = img_size // patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, num_register_tokens, dim))
        # Used only by DINO's masked-image training; kept because the checkpoint has it.
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.patch_embed = PatchEmbed(patch_size, dim)
        self.blocks = nn.ModuleList(
            Block(dim, num_heads, mlp_ratio, init_values=1.0, norm_eps=DINO_NORM_EPS)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim, eps=DINO_NORM_EPS)

    def forward(self, images: Tensor) -> Tensor:
        num, _, height, width = images.shape
        x = self.patch_embed(images)
        x = torch.cat([self.cls_token.expand(num, -1, -1), x], dim=1)
        x = x + self._pos_embed(height // self.patch_size, width // self.patch_size).to(x.dtype)
        x = torch.cat([x[:, :1], self.register_tokens.expand(num, -1, -1), x[:, 1:]], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 1 + self.register_tokens.shape[1] :]

    def _pos_embed(self, rows: int, cols: int) -> Tensor:
        """The stored embedding resized to rows x cols like DINOv2: bicubic, antialiased, fp32."""
        grid = math.isqrt(self.pos_embed.shape[1] - 1)
        if (rows, cols) == (grid, grid):
            return self.pos_embed
        pos = self.pos_embed.float()
        patches = pos[:, 1:].reshape(1, grid, grid, -1).permute(0, 3, 1, 2)
        patches = F.interpolate(patches, size=(rows, cols), mode='bicubic', antialias=True)
        return torch.cat(
            [pos[:, :1], patches.permute(0, 2, 3, 1).reshape(1, rows * cols, -1)], dim=1
        )
