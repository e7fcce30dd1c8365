"""Alternating frame/global attention over DINO patch tokens (VGGT's aggregator, made causal).

Each frame's tokens are [camera | registers | patches]. Frame blocks attend within a frame; global
blocks attend across frames, frame-causally: over a whole sequence with a block-causal mask, or one
frame at a time against a key/value cache of earlier frames. Both give the same tokens.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from vggt_ros.model.dino import DinoVisionTransformer
from vggt_ros.model.kv_cache import KVCache
from vggt_ros.model.layers import Block, TokenMerger, frame_causal_mask
from vggt_ros.model.rope import rope_tables, token_positions

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Aggregator(nn.Module):
    """Images [S, 3, H, W] in [0, 1] -> {layer: [S, P, 2*dim]}: frame- | global-block outputs."""

    def __init__(
        self,
        img_size: int,
        patch_size: int,
        dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float,
        num_register_tokens: int,
        dino_depth: int,
        dino_num_heads: int,
        output_layers: Iterable[int],
        rope_freq: float = 100.0,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.patch_start_idx = 1 + num_register_tokens
        self.output_layers = frozenset(output_layers)
        self.rope_freq = rope_freq
        self.head_dim = dim // num_heads
        self.camera_token = nn.Parameter(torch.zeros(1, 2, 1, dim))
        self.register_token = nn.Parameter(torch.zeros(1, 2, num_register_tokens, dim))
        self.patch_embed = DinoVisionTransformer(
            img_size, patch_size, dim, dino_depth, dino_num_heads, mlp_ratio, num_register_tokens
        )
        self.frame_blocks = nn.ModuleList(
            Block(dim, num_heads, mlp_ratio, qk_norm=True) for _ in range(depth)
        )
        self.global_blocks = nn.ModuleList(
            Block(dim, num_heads, mlp_ratio, qk_norm=True) for _ in range(depth)
        )
        self._init_constants()
        self.register_load_state_dict_post_hook(_restore_constants)

    def _init_constants(self) -> None:
        """ImageNet mean/std beside the parameters; non-persistent: checkpoints do not hold them."""
        for name, values in (('_resnet_mean', IMAGENET_MEAN), ('_resnet_std', IMAGENET_STD)):
            constant = torch.tensor(values, device=self.camera_token.device).view(3, 1, 1)
            self.register_buffer(name, constant, persistent=False)

    def forward(
        self,
        images: Tensor,
        cache: KVCache | None = None,
        first: bool = True,
        merger: TokenMerger | None = None,
        merge_start: int = 0,
        sequences: int = 1,
    ) -> dict[int, Tensor]:
        """Tokens of `output_layers` for images [S, 3, H, W].

        Without a cache the S frames are a whole causal sequence, or `sequences` independent ones
        of S / sequences frames each, one after the other (a training batch). With the global
        blocks' cache (already told `new_frame()`), images holds the stream's next frame (S = 1).
        `first` marks the frame that takes special-token slot 0: the first of the sequence, or of
        the stream. A merger (streaming only) merges that frame's tokens in global blocks from
        `merge_start`.
        """
        frames, _, height, width = images.shape
        if merger is not None and (cache is None or frames != 1):
            raise ValueError('token merging needs a cache and one frame at a time')
        if frames % sequences or (cache is not None and sequences != 1):
            raise ValueError(f'cannot split {frames} frames into {sequences} sequences')
        length = frames // sequences
        rows, cols = height // self.patch_size, width // self.patch_size
        x = self.patch_embed((images - self._resnet_mean) / self._resnet_std)
        special = self._special_tokens(length, first).repeat(sequences, 1, 1)
        x = torch.cat([special.to(x.dtype), x], dim=1)
        tokens, dim = x.shape[1:]
        rope = rope_tables(
            token_positions(rows, cols, self.patch_start_idx, x.device),
            self.head_dim,
            self.rope_freq,
        )
        global_rope = rope.repeat(length)
        mask = None if cache is not None else frame_causal_mask(length, tokens, x.device)
        out = {}
        blocks = zip(self.frame_blocks, self.global_blocks, strict=True)
        for i, (frame_block, global_block) in enumerate(blocks):
            x = frame_block(x, rope)
            per_frame = x
            layer_cache = cache[i] if cache is not None else None
            block_merger = merger if i >= merge_start else None
            x = global_block(
                x.reshape(sequences, length * tokens, dim),
                global_rope,
                mask,
                layer_cache,
                block_merger,
            )
            x = x.reshape(frames, tokens, dim)
            if i in self.output_layers:
                out[i] = torch.cat([per_frame, x], dim=-1)
        return out

    def _special_tokens(self, frames: int, first: bool) -> Tensor:
        """[S, 1 + registers, dim]: slot 0 for the sequence's first frame, slot 1 for the others."""
        slot = torch.ones(frames, dtype=torch.long, device=self.camera_token.device)
        if first:
            slot[0] = 0
        return torch.cat([self.camera_token[0, slot], self.register_token[0, slot]], dim=1)


def _restore_constants(module: Aggregator, _incompatible_keys: object) -> None:
    """Recreate mean/std beside the loaded weights: loading with assign=True into a model built on
    the meta device replaces every parameter but leaves the non-persistent buffers on meta."""
    module._init_constants()
