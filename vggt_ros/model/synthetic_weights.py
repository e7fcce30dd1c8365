"""Deterministic synthetic weights (recipe `synthetic-weights-v1`) to check parity with the
reference implementation without its checkpoint: the golden outputs were made with these tensors.

Each key i (0-based line of the official key list) draws z ~ N(0, 1) from a generator seeded with
seed * 1_000_003 + i, and is scaled by the first matching rule of `synthetic_tensor`.
"""

from __future__ import annotations

import ast
import math
import os
from collections.abc import Iterable

import torch
from torch import Tensor

from vggt_ros.model.streamvggt import StreamVGGT

Shapes = Iterable[tuple[str, tuple[int, ...]]]


def read_key_shapes(tsv_path: str | os.PathLike) -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) per line of a `key<TAB>(shape)<TAB>dtype` list, in file order."""
    with open(tsv_path, encoding='utf-8') as lines:
        rows = [line.rstrip('\n').split('\t') for line in lines if line.strip()]
    return [(key, tuple(ast.literal_eval(shape))) for key, shape, *_ in rows]


def synthetic_tensor(key: str, shape: tuple[int, ...], index: int, seed: int) -> Tensor:
    """The recipe's tensor for the key on line `index`."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + index)
    z = torch.randn(shape, generator=generator, dtype=torch.float32)
    if key.endswith(('ls1.gamma', 'ls2.gamma')):
        return 0.2 + 0.05 * z
    if key.endswith('.weight') and len(shape) == 1:
        return 1.0 + 0.1 * z
    if key.endswith('.bias'):
        return 0.02 * z
    if key.endswith('.weight'):
        return z / math.sqrt(math.prod(shape[1:]))
    return 0.5 * z


def synthetic_state_dict(
    keys: str | os.PathLike | Shapes,
    seed: int = 1,
    skip_prefixes: tuple[str, ...] = ('track_head.',),
) -> dict[str, Tensor]:
    """Recipe tensors for a key list: a TSV path, or (key, shape) pairs (e.g. of a state_dict).

    Skipped keys (by default the 394 `track_head.*`, which this model does not have) still count in
    the numbering, as the recipe requires, but are neither drawn nor returned.
    """
    pairs = read_key_shapes(keys) if isinstance(keys, (str, os.PathLike)) else list(keys)
    return {
        key: synthetic_tensor(key, shape, index, seed)
        for index, (key, shape) in enumerate(pairs)
        if not key.startswith(skip_prefixes)
    }


def synthetic_model(
    preset: str = 'tiny', seed: int = 1, keys: str | os.PathLike | Shapes | None = None
) -> StreamVGGT:
    """A model holding recipe weights, built on the meta device and given them without copies.

    `keys` numbers the recipe: the official key list (whose track_head lines count) to reproduce
    the golden outputs; by default the model's own state_dict order.
    """
    with torch.device('meta'):
        model = StreamVGGT(preset)
    if keys is None:
        keys = [(key, tuple(tensor.shape)) for key, tensor in model.state_dict().items()]
    model.load_state_dict(synthetic_state_dict(keys, seed), strict=True, assign=True)
    return model.eval().requires_grad_(False)
