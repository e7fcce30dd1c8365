"""Correspondence supervision: teach a from-scratch aggregator where the first frame's content
went, the step the pose loss alone does not teach (docs/training-experiments.md).

Two training-only terms, from the ground-truth matches of data.first_frame_matches:

- match: one head of chosen global blocks puts each later frame's patch query on the first
  frame's patch that shows the same point (cross-entropy over every key the query may attend to);
- flow: a linear readout of the last layer's patch tokens regresses where that point is in the
  first frame (L1, in patches), so the tokens come to carry the displacement a pose is made of.

Hooks read the supervised attention's inputs and the aggregator's output while a training
forward pass runs under `recording()`. The readout is the model's flow head where the preset has
one (model.heads.FlowHead, what `pose_source: matches` reads), so a run's weights carry it
trained; for other presets it lives only in training.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from vggt_ros.model import StreamVGGT
from vggt_ros.model.layers import Attention
from vggt_ros.model.rope import RopeTables, apply_rope
from vggt_ros.training.data import Clip

MATCH_HEAD = 0  # the supervised head of each chosen global block; the others stay free


class CorrespondenceLoss(nn.Module):
    """The match and flow terms of the model's last forward pass over `clip`."""

    def __init__(self, model: StreamVGGT, blocks: Sequence[int]) -> None:
        super().__init__()
        aggregator = model.aggregator
        self.patch_start = aggregator.patch_start_idx
        self.flow_readout = (
            model.flow_head.proj
            if model.flow_head is not None
            else nn.Linear(2 * aggregator.camera_token.shape[-1], 2)
        )
        self._attention_inputs: list[tuple[Attention, Tensor, RopeTables, Tensor]] = []
        self._tokens: dict[int, Tensor] = {}
        self._recording = False
        for index in blocks:
            attention = aggregator.global_blocks[index].attn
            attention.register_forward_pre_hook(self._keep_attention_input)
        aggregator.register_forward_hook(self._keep_tokens)

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """Keep what the terms need from the model's forward pass within; other passes (a
        validation, say) leave nothing behind."""
        self._attention_inputs, self._tokens, self._recording = [], {}, True
        try:
            yield
        finally:
            self._recording = False

    def _keep_attention_input(self, attention: Attention, args: tuple) -> None:
        if self._recording:
            x, rope, mask = args[:3]
            self._attention_inputs.append((attention, x, rope, mask))

    def _keep_tokens(self, _module: nn.Module, _args: tuple, tokens: dict[int, Tensor]) -> None:
        if self._recording:
            self._tokens = tokens

    def forward(self, clip: Clip) -> dict[str, Tensor]:
        """{'match', 'flow'} for the forward pass last recorded over `clip`."""
        inputs = self._attention_inputs
        if not inputs:
            raise RuntimeError('record a forward pass over the clip before scoring it')
        matched = clip.matches >= 0
        flow = self.flow()
        return {
            'match': sum(self._match(*entry, clip) for entry in inputs) / len(inputs),
            'flow': _masked_mean((flow - clip.flow).abs().mean(-1), matched),
        }

    def flow(self) -> Tensor:
        """[S, P, 2] the readout's estimate, for the forward pass last recorded, of where each
        patch's centre is in the first frame (in patches from the centre, as Clip.flow)."""
        if not self._tokens:
            raise RuntimeError('record a forward pass before reading its flow')
        patches = self._tokens[max(self._tokens)][:, self.patch_start :]
        return self.flow_readout(patches.float())

    def _match(
        self, attention: Attention, x: Tensor, rope: RopeTables, mask: Tensor, clip: Clip
    ) -> Tensor:
        """Cross-entropy of the supervised head's patch queries against their first-frame match."""
        sequences, length = clip.sequences, len(clip.images) // clip.sequences
        per_frame = x.shape[1] // length
        logits = head_logits(attention, x.float(), rope, MATCH_HEAD)
        logits = logits.masked_fill(~mask, float('-inf'))
        logits = logits.reshape(sequences, length, per_frame, -1)[:, :, self.patch_start :]
        matches = clip.matches.reshape(sequences, length, -1)
        matched = matches >= 0
        if not matched.any():
            return logits.new_zeros(())
        return F.cross_entropy(logits[matched], self.patch_start + matches[matched])


def head_logits(attention: Attention, x: Tensor, rope: RopeTables, head: int) -> Tensor:
    """[B, N, N] attention logits of one head for the attention's input x [B, N, dim], as the
    attention computes them (projection, q/k norms, RoPE, 1/sqrt(head_dim))."""
    batch, tokens, dim = x.shape
    head_dim = dim // attention.num_heads
    qkv = attention.qkv(x).reshape(batch, tokens, 3, attention.num_heads, head_dim)
    q, k = qkv[:, :, 0, head], qkv[:, :, 1, head]
    q = apply_rope(attention.q_norm(q), rope)
    k = apply_rope(attention.k_norm(k), rope)
    return q @ k.transpose(-1, -2) / head_dim**0.5


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    return values[mask].mean() if mask.any() else values.new_zeros(())
