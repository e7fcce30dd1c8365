"""What a model's accuracy is compared with, on the same frames (`vggt-eval --baselines`).

- mean depth image: each pixel's mean ground-truth depth over the scored frames. An oracle room
  prior: a model that beats it reads the image instead of reciting the room's average layout.
- constant depth: every pixel the same (after the median scale, the truth's median);
- static camera: identity poses. After a Sim(3) alignment a still trajectory collapses onto the
  centroid of the truth, so its ATE is the RMS distance of the true centres from their mean;
- random weights: the same preset and options with untrained weights (seeded), replayed again.

Depth baselines are scored as the model is: at the model's pixels, one median scale each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from rosbags.highlevel import AnyReader

from vggt_ros import param_options
from vggt_ros.evaluation.bag_io import read_messages, stamp_ns, topic_connections
from vggt_ros.evaluation.metrics import DepthAccumulator
from vggt_ros.evaluation.replay import DEPTH_TYPES
from vggt_ros.images import depth_to_metres
from vggt_ros.model import StreamVGGT
from vggt_ros.reconstructor import Reconstructor
from vggt_ros.registration import to_model_grid

RANDOM_SEED = 0


def _truths(
    reader: AnyReader, topic: str, stamps: set[int], image_width: int
) -> Iterable[np.ndarray]:
    """The depth images of `topic` stamped at `stamps`, at the model's pixels, in bag order."""
    for _, _, message in read_messages(reader, topic_connections(reader, topic, DEPTH_TYPES)):
        if stamp_ns(message) in stamps:
            yield to_model_grid(depth_to_metres(message), image_width)


def depth_baselines(
    reader: AnyReader, topic: str, stamps: Iterable[int], image_width: int
) -> dict[str, float]:
    """AbsRel and delta < 1.25 of the mean depth image and of a constant depth, over the depth
    images the model was scored on (two passes over the topic: memory is one image)."""
    stamps = set(stamps)
    total = count = None
    for truth in _truths(reader, topic, stamps, image_width):
        valid = np.isfinite(truth) & (truth > 0)
        if total is None:
            total, count = np.zeros(truth.shape), np.zeros(truth.shape)
        total += np.where(valid, truth, 0.0)
        count += valid
    if total is None:
        raise ValueError(f'no depth image of {topic} at the scored stamps')
    mean_image = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    mean, constant = DepthAccumulator(), DepthAccumulator()
    for truth in _truths(reader, topic, stamps, image_width):
        mean.add(mean_image, truth)
        constant.add(np.ones_like(truth), truth)
    return {
        f'baseline_{name}_{metric}': accumulator.result()[f'depth_{metric}']
        for name, accumulator in (('mean_depth_image', mean), ('constant_depth', constant))
        for metric in ('abs_rel', 'delta_1.25')
    }


def static_camera_ate(gt_positions: np.ndarray) -> float:
    """ATE after Sim(3) of a camera that never moves, against these matched true centres."""
    offsets = gt_positions - gt_positions.mean(axis=0)
    return float(np.sqrt((offsets**2).sum(axis=1).mean()))


def random_weights_reconstructor(values: Mapping[str, Any]) -> Reconstructor:
    """The parameters' preset and session on untrained weights (seeded, so runs agree)."""
    torch.manual_seed(RANDOM_SEED)
    model = StreamVGGT(values['preset']).eval().requires_grad_(False)
    return Reconstructor(model, **param_options.reconstructor_options(values))
