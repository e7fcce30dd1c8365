"""What ours is compared with: the reference's way of caching keys and values, and the naive
window that re-runs the whole model on the last W frames for every new frame.

The reference-style cache is built from bench code alone: a KVCache delegates everything to its
per-layer caches (`KVCache.layers`), so swapping those for reference-style layers turns a copy of
one of our sessions into a reference-style twin, with no seam in the model for it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vggt_ros.bench.harness import copy_session
from vggt_ros.bench.tokens import frame_rope
from vggt_ros.model import StreamSession, StreamVGGT
from vggt_ros.model.kv_cache import KVCache
from vggt_ros.model.rope import RopeTables, apply_rope


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


def by_frame(flat: Tensor, tokens: int) -> Tensor:
    """[heads, frames * tokens, head_dim] -> a copy shaped [1, heads, frames, tokens, head_dim]."""
    heads, total, head_dim = flat.shape
    if total % tokens:
        raise ValueError(f'{total} cached tokens are not whole frames of {tokens}')
    return flat.reshape(1, heads, total // tokens, tokens, head_dim).clone()


def reference_style_layers(
    model: StreamVGGT, image_size: tuple[int, int], source: KVCache | None = None
) -> list[ReferenceStyleLayer]:
    """One reference-style cache per global block, empty or holding a copy of `source`'s frames
    (an unbounded, unmerged cache of frames of `image_size`)."""
    rope = frame_rope(model.config, image_size, model.device)
    tokens = len(rope.cos)
    layers = []
    for index, block in enumerate(model.aggregator.global_blocks):
        keys = values = None
        if source is not None and source[index].num_frames:
            layer = source[index]
            keys, values = by_frame(layer.keys, tokens), by_frame(layer.values, tokens)
        layers.append(ReferenceStyleLayer(block.attn.k_norm, rope, keys, values))
    return layers


def fork_reference_style(session: StreamSession, image_size: tuple[int, int]) -> StreamSession:
    """A copy of an unbounded session at its current frame, its global blocks' caches replaced by
    reference-style ones holding the same keys and values: the reference-style step is timed at
    many cached frames without streaming that history through the 1B model a second time."""
    twin = copy_session(session)
    twin.caches[0].layers[:] = reference_style_layers(session.model, image_size, session.caches[0])
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
