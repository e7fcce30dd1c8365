"""Section 8: memory over a long windowed stream; once the window is full nothing should grow."""

from __future__ import annotations

from typing import Any

import torch

from vggt_ros.bench.harness import rss_bytes, slope
from vggt_ros.model import StreamVGGT

MEMORY_SIZE, MEMORY_WINDOW = (28, 42), 16


def memory_growth(
    model: StreamVGGT, image_size: tuple[int, int], window: int, frames: int, seed: int = 0
) -> dict[str, Any]:
    """RSS and cache bytes after every frame of a long windowed stream, with slopes over its
    second half. Eight distinct images cycle (no 2000-image tensor)."""
    if frames < 4 * window:
        raise ValueError(f'need frames >= 4 * window to fit a slope, got {frames}, {window}')
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(8, 3, *image_size, generator=generator)
    session = model.new_session(window=window)
    rss, cache = [], []
    with torch.inference_mode():
        for frame in range(frames):
            session.step(images[frame % len(images)])
            rss.append(rss_bytes())
            cache.append(session.cache_bytes)
    return {
        'image_size': list(image_size),
        'window': window,
        'frames': frames,
        'rss_first_last': [rss[0], rss[-1]],
        'cache_first_last': [cache[0], cache[-1]],
        'rss_slope_bytes_per_frame': slope(rss),
        'cache_slope_bytes_per_frame': slope(cache),
    }
