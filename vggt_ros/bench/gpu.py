"""Section 9: the 1B preset in bf16 on the GPU, frames/s of a windowed stream after warm-up."""

from __future__ import annotations

import time
from typing import Any

import torch

from vggt_ros.bench.blocks import BLOCK_PRESET
from vggt_ros.bench.harness import stats
from vggt_ros.model.synthetic_weights import synthetic_model

GPU_SIZE, GPU_WINDOW, GPU_WARMUP = (518, 392), 16, 5


def gpu_frames_per_s(frames: int, size: tuple[int, int] = GPU_SIZE) -> dict[str, Any]:
    """Frames/s at `size` (518x392: the node's default width); skipped, and said so, without
    CUDA."""
    if not torch.cuda.is_available():
        return {'skipped': 'no CUDA device: the 1B bf16 run needs a GPU'}
    model = synthetic_model(BLOCK_PRESET).to('cuda')
    session = model.new_session(window=GPU_WINDOW, precision='bf16')
    images = torch.rand(GPU_WINDOW, 3, *size, device='cuda')
    times = []
    with torch.inference_mode():
        for frame in range(GPU_WARMUP + frames):
            torch.cuda.synchronize()
            start = time.perf_counter()
            session.step(images[frame % len(images)])
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    step_s = stats(times[GPU_WARMUP:])
    return {
        'device': torch.cuda.get_device_name(),
        'image_size': list(size),
        'window': GPU_WINDOW,
        'frames': frames,
        'step_s': step_s,
        'frames_per_s': 1 / step_s['median'],
    }
