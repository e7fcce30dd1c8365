"""Fit a model's flow head (model.heads.FlowHead) to its frozen tokens, and write the weights.

    python -m vggt_ros.training.flow_head WEIGHTS BAGS... --out WEIGHTS_OUT [--clips N]

The head is linear in the last layer's patch tokens, so for a trained aggregator the best one is
a least-absolute-deviations fit (ridge-regularised) of those tokens to the ground-truth matches
(training.data.first_frame_matches) of clips drawn as training draws them. `vggt-train
--correspondence` trains the head along with the aggregator; the fit after export makes it the
best linear readout of the final tokens, and gives one to weights trained before the preset had
a flow head (the shipped run's). The head's depth tilt is fitted beside it, on whole bags
streamed as deployed (fit_depth_tilt).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from vggt_ros.checkpoints import load_state_dict_file
from vggt_ros.config_files import config_file, read_params_file
from vggt_ros.model import StreamVGGT
from vggt_ros.pose_from_matches import image_step, lift
from vggt_ros.stream_types import SessionOptions
from vggt_ros.training.data import BagTopics, Frames, draw_clip, read_frames

FLOW_HEAD_PREFIX = 'flow_head.'
RIDGE = 1e-3  # relative to the mean feature energy: keeps rarely used directions at zero
IRLS_ITERATIONS = 8
IRLS_FLOOR = 0.01  # patches: residuals below count as this, so no match weighs without bound
TILT_WINDOW = read_params_file(config_file('small.yaml'))['window_size']  # deployed
TILT_MIN_PIXELS = 100  # a frame with fewer pixels of known depth says nothing of its lean


def fit_flow_head(
    model: StreamVGGT,
    bags: Sequence[Path],
    clips: int,
    image_width: int = 112,
    length: int = 8,
    max_stride: int = 4,
    seed: int = 0,
) -> int:
    """Set model.flow_head to the least-absolute-deviations fit over `clips` clips from `bags`
    (each bag read once, clips spread evenly over them); the number of matches fitted."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(bags), size=min(clips, len(bags)), replace=False)
    per_bag = np.full(len(chosen), clips // len(chosen))
    per_bag[: clips % len(chosen)] += 1
    features, targets = [], []
    start = model.aggregator.patch_start_idx
    for index, count in zip(chosen, per_bag, strict=True):
        frames = read_frames(bags[index], image_width, BagTopics())
        for _ in range(count):
            clip = draw_clip(frames, length, max_stride, rng)
            with torch.inference_mode():
                tokens = model.aggregator(clip.images.to(model.device))
            patches = tokens[model.config.depth - 1][:, start:].double().cpu()
            matched = clip.matches >= 0
            features.append(patches[matched])
            targets.append(clip.flow[matched].double())
    x, y = torch.cat(features), torch.cat(targets)
    x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    solution = torch.stack([_l1_fit(x, y[:, axis]) for axis in range(2)], 1)  # [dim + 1, 2]
    projection = model.flow_head.proj
    with torch.no_grad():
        projection.weight.copy_(solution[:-1].T)
        projection.bias.copy_(solution[-1])
    return len(x)


def fit_depth_tilt(
    model: StreamVGGT, bags: Sequence[Path], image_width: int = 112, window: int = TILT_WINDOW
) -> int:
    """Set model.flow_head.depth_tilt to the least-squares slope, over the frames after the first
    of `bags` streamed one by one as deployed, of how the depth leans across the image (the
    slope of log predicted over true depth on the column, in image widths) on how far the
    content moved across it since the previous frame (its true image_step); the number of
    frames fitted."""
    leans, steps = [], []
    for bag in bags:
        frames = read_frames(bag, image_width, BagTopics())
        session = model.new_session(SessionOptions(window=window, heads=('depth',)))
        for index, image in enumerate(frames.images):
            with torch.inference_mode():
                depth = session.step(image.to(model.device))['depth']
            fitted = _lean_and_step(depth.float().cpu().numpy(), frames, index) if index else None
            if fitted is not None:
                leans.append(fitted[0])
                steps.append(fitted[1])
    leans, steps = np.array(leans), np.array(steps)
    if not np.any(steps):
        raise ValueError('no frame of the bags moved across the image: no tilt to fit')
    with torch.no_grad():
        model.flow_head.depth_tilt.fill_(float(leans @ steps / (steps @ steps)))
    return len(steps)


def _lean_and_step(depth: np.ndarray, frames: Frames, index: int) -> tuple[float, float] | None:
    """A frame's lean (see fit_depth_tilt) and its true image_step, or None where too little of
    it has depth."""
    truth = frames.depths[index].numpy()
    log_ratio = np.log(depth.reshape(truth.shape) / truth)
    valid = np.isfinite(log_ratio)
    if valid.sum() < TILT_MIN_PIXELS:
        return None
    rows, columns = np.nonzero(valid)
    width = truth.shape[1]
    lean = np.polyfit((columns - frames.K[0, 2]) / width, log_ratio[valid], 1)[0]
    pixels = np.column_stack([columns, rows]).astype(np.float64)
    pixels, points = lift(pixels, pixels, truth, frames.K)  # in this camera's frame
    previous_from_this = np.linalg.inv(frames.poses[index - 1]) @ frames.poses[index]
    step = image_step(previous_from_this, pixels, points, frames.K, width)
    return None if step is None else (float(lean), step)


def _l1_fit(x: Tensor, y: Tensor) -> Tensor:
    """Ridge-regularised least absolute deviations by iteratively reweighted least squares: the
    L1 the training readout is trained with, so that the few matches a patch token cannot know
    (across an occluding edge, say) do not pull the fit as squares would."""
    weights = torch.ones_like(y)
    for _ in range(IRLS_ITERATIONS):
        gram = (x * weights[:, None]).T @ x
        ridge = RIDGE * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
        ridge[-1, -1] = 0  # the bias is not shrunk
        solution = torch.linalg.solve(gram + ridge, (x * weights[:, None]).T @ y)
        weights = 1 / (x @ solution - y).abs().clamp(min=IRLS_FLOOR)
    return solution


def load_without_flow_head(weights: Path, preset: str) -> StreamVGGT:
    """The model with `weights`, which may lack a flow head (its fit replaces it anyway)."""
    model = StreamVGGT(preset)
    if model.flow_head is None:
        raise ValueError(f'the {preset} preset has no flow head')
    state = load_state_dict_file(weights)
    state = {k: v.float() for k, v in state.items() if not k.startswith(FLOW_HEAD_PREFIX)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not key.startswith(FLOW_HEAD_PREFIX) for key in missing):
        raise ValueError(f'{weights} is not a {preset} model: {(missing + unexpected)[:5]}')
    return model.eval().requires_grad_(False)


def write_with_flow_head(model: StreamVGGT, weights: Path, out: Path, note: str) -> None:
    """`weights` (fp16, as exported) with the model's flow head, its description saying so."""
    with safe_open(weights, 'pt') as file:
        metadata = dict(file.metadata() or {})
    state = load_state_dict_file(weights)
    dtype = next(iter(state.values())).dtype
    for name, tensor in model.flow_head.state_dict().items():
        state[FLOW_HEAD_PREFIX + name] = tensor.to(dtype)
    if 'description' in metadata:
        metadata['description'] = metadata['description'].split('; flow head')[0] + '; ' + note
    metadata['flow_head'] = note
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, out, metadata=metadata)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('weights', type=Path, help='a .safetensors file (vggt_ros.training.export)')
    parser.add_argument('bags', nargs='+', type=Path, help='training rosbags with ground truth')
    parser.add_argument('--out', type=Path, required=True, help='the .safetensors file to write')
    parser.add_argument('--preset', default='small')
    parser.add_argument('--clips', type=int, default=300, help='8-frame clips to fit on')
    parser.add_argument('--image-width', type=int, default=112)
    parser.add_argument('--tilt-bags', type=int, default=45, help='bags to fit the tilt on')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    model = load_without_flow_head(args.weights, args.preset)
    matches = fit_flow_head(model, args.bags, args.clips, args.image_width, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    chosen = rng.choice(len(args.bags), min(args.tilt_bags, len(args.bags)), replace=False)
    frames = fit_depth_tilt(model, [args.bags[i] for i in sorted(chosen)], args.image_width)
    note = (
        f'flow head fitted (least absolute deviations) to {matches} matches, {args.clips} clips;'
        f' depth tilt {float(model.flow_head.depth_tilt):.2f} fitted on {frames} frames of'
        f' {len(chosen)} bags'
    )
    write_with_flow_head(model, args.weights, args.out, note)
    print(f'{args.out}: {note}')


if __name__ == '__main__':
    main()
