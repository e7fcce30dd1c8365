"""FastVGGT token merging of the new frame in streaming global attention.

FastVGGT (arXiv 2509.02560) finds that most tokens' global-attention maps are near duplicates, so
it averages similar tokens' queries, keys and values before attention and copies each average's
output back to its members afterwards. In a stream only the new frame may change, so merging here
is within that frame, and its merged keys/values are what the window caches: a merged frame costs
about a third of its tokens in memory and in every later frame's attention.

A frame's P tokens split into three disjoint sets:
- destinations: the special tokens plus one random patch per cell x cell square of the true
  (rows, cols) patch grid (edge cells cut by the grid border count too);
- protected: a fixed stride over the remaining tokens, never merged;
- sources: the rest. Each goes to its most cosine-similar destination, measured on the block's
  attention input norm1(x); the `merge_ratio` most similar of them are merged, the others are
  kept whole like the protected ones.
Unlike FastVGGT, no token is both a destination and protected (FastVGGT then holds it twice), so
a merged frame keeps exactly `token_counts(...).kept` tokens whatever the random draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from vggt_ros.model.config import MergingConfig

SEED_STRIDE = 1_000_003  # frame t of seed s draws from seed s * SEED_STRIDE + t


class TokenCounts(NamedTuple):
    """Sizes of one merged frame's token sets; kept = tokens left in attention and the cache."""

    tokens: int
    destinations: int
    protected: int
    sources: int
    merged: int
    kept: int


def token_counts(config: MergingConfig, rows: int, cols: int, num_special: int) -> TokenCounts:
    """Closed-form set sizes for a rows x cols patch grid; the partition below realises them."""
    tokens = num_special + rows * cols
    destinations = num_special + math.ceil(rows / config.cell_size) * math.ceil(
        cols / config.cell_size
    )
    protected = min(int(config.protected_fraction * tokens), tokens - destinations)
    sources = tokens - destinations - protected
    merged = math.floor(config.merge_ratio * sources)
    return TokenCounts(tokens, destinations, protected, sources, merged, tokens - merged)


def global_attention_flops(
    config: MergingConfig | None,
    rows: int,
    cols: int,
    window: int,
    dim: int,
    depth: int,
    num_special: int = 5,
) -> int:
    """Global-attention FLOPs of one new frame, summed over the `depth` global blocks.

    `window` counts the cached frames, anchor and new frame included, all merged alike (the
    steady state). Per block: 4 * queries * keys * dim for QK^T and PV, plus 2 * sources *
    destinations * dim for matching in merging blocks. The qkv, proj and MLP costs are the same
    with or without merging and are left out.
    """
    tokens = num_special + rows * cols
    unmerged = 4 * tokens * window * tokens * dim
    if config is None or not config.enabled or window < 2:
        return depth * unmerged
    counts = token_counts(config, rows, cols, num_special)
    keys = tokens + (window - 1) * counts.kept
    merged = 4 * counts.kept * keys * dim + 2 * counts.sources * counts.destinations * dim
    merging_blocks = max(depth - config.merge_start, 0)
    return merging_blocks * merged + (depth - merging_blocks) * unmerged


@dataclass(frozen=True)
class FrameMerge:
    """One block's merge plan for a frame; the merged sequence is [destinations | kept whole].

    `merged` sources (token indices) go to destination rows `target`; `whole` tokens pass
    through; `sizes` counts each destination's members, itself included (float, the divisor of
    the mean); `row_of` is the merged-sequence row of every token, which unmerge reads.
    """

    destinations: Tensor
    merged: Tensor
    target: Tensor
    whole: Tensor
    sizes: Tensor
    row_of: Tensor

    def merge(self, x: Tensor) -> Tensor:
        """x [..., P, C] -> [..., kept, C]: each destination becomes the unweighted mean of itself
        and its sources (accumulated in fp32), followed by the tokens kept whole."""
        sums = x.index_select(-2, self.destinations).float()
        sums.index_add_(-2, self.target, x.index_select(-2, self.merged).float())
        means = (sums / self.sizes[:, None]).to(x.dtype)
        return torch.cat([means, x.index_select(-2, self.whole)], dim=-2)

    def unmerge(self, y: Tensor) -> Tensor:
        """y [..., kept, C] -> [..., P, C]: each token takes its own row, a merged source that of
        its destination."""
        return y.index_select(-2, self.row_of)


@dataclass(frozen=True)
class FramePartition:
    """Token indices of one frame's destinations, protected tokens and sources (disjoint, all P).

    The partition is drawn once per frame and shared by all merging blocks; only the matching,
    which depends on each block's input, is per block.
    """

    destinations: Tensor
    protected: Tensor
    sources: Tensor
    merge_ratio: float

    @property
    def num_tokens(self) -> int:
        return len(self.destinations) + len(self.protected) + len(self.sources)

    def match(self, metric: Tensor) -> FrameMerge:
        """Plan from metric [..., P, C] (the block's attention input): each source to its most
        cosine-similar destination, the most similar `merge_ratio` of sources merged."""
        metric = F.normalize(metric.reshape(-1, metric.shape[-1]).float(), dim=-1)
        similarity = metric[self.sources] @ metric[self.destinations].T
        best, nearest = similarity.max(dim=-1)
        order = best.argsort(descending=True, stable=True)
        count = math.floor(self.merge_ratio * len(order))
        merged, target = self.sources[order[:count]], nearest[order[:count]]
        whole = torch.cat([self.protected, self.sources[order[count:]]]).sort().values
        destinations, device = len(self.destinations), metric.device
        row_of = torch.empty(self.num_tokens, dtype=torch.long, device=device)
        row_of[self.destinations] = torch.arange(destinations, device=device)
        row_of[whole] = destinations + torch.arange(len(whole), device=device)
        row_of[merged] = target
        ones = torch.ones(count, device=device)
        sizes = torch.ones(destinations, device=device).index_add_(0, target, ones)
        return FrameMerge(self.destinations, merged, target, whole, sizes, row_of)


def cell_destinations(rows: int, cols: int, cell: int, generator: torch.Generator) -> Tensor:
    """Row-major patch index of one uniformly random patch in each cell x cell cell of the grid,
    cells in row-major order; edge cells choose among the patches they do contain."""
    cell_rows, cell_cols = math.ceil(rows / cell), math.ceil(cols / cell)
    scores = torch.full((cell_rows * cell, cell_cols * cell), -1.0)
    scores[:rows, :cols] = torch.rand(rows, cols, generator=generator)
    cells = scores.reshape(cell_rows, cell, cell_cols, cell).transpose(1, 2)
    pick = cells.reshape(cell_rows, cell_cols, cell * cell).argmax(dim=-1)
    row = torch.arange(cell_rows)[:, None] * cell + pick // cell
    col = torch.arange(cell_cols)[None, :] * cell + pick % cell
    return (row * cols + col).reshape(-1)


def partition_frame(
    config: MergingConfig,
    rows: int,
    cols: int,
    num_special: int,
    frame_index: int,
    device: torch.device | None = None,
) -> FramePartition:
    """The partition of stream frame `frame_index`, with tokens [special | rows x cols patches]."""
    counts = token_counts(config, rows, cols, num_special)
    generator = torch.Generator().manual_seed(config.seed * SEED_STRIDE + frame_index)
    patches = cell_destinations(rows, cols, config.cell_size, generator)
    destinations = torch.cat([torch.arange(num_special), num_special + patches])
    is_destination = torch.zeros(counts.tokens, dtype=torch.bool)
    is_destination[destinations] = True
    others = (~is_destination).nonzero()[:, 0]
    is_protected = torch.zeros(len(others), dtype=torch.bool)
    if counts.protected:
        step = len(others) // counts.protected
        is_protected[torch.arange(counts.protected) * step] = True
    return FramePartition(
        destinations.to(device),
        others[is_protected].to(device),
        others[~is_protected].to(device),
        config.merge_ratio,
    )
