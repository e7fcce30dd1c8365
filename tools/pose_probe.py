"""Two-frame probes of where a from-scratch model's pose signal stops.

Each pair is a training image twice, altered by the probe; frame 1's pose-encoding qy (the
rotation a rotate path turns by) is trained, L1 after every camera-head refinement, to the
probe's target in [-1, 1], and frame 0's to 0. Validation pairs come from held-out worlds.

    square        a white patch-sized square at column c in frame 1: read a position
    square-first  the square in frame 0 only: carry a position from one frame to the next
    square-pair   the square in both, moved by s: a marker's displacement
    roll          frame 1 is frame 0 rolled by s pixels: the displacement of the content itself

Results and what they show: docs/training-experiments.md.

    python tools/pose_probe.py roll out/train/scenes/* --val out/train/val/* --steps 300
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from vggt_ros.model import StreamVGGT
from vggt_ros.training.data import BagTopics, read_frames
from vggt_ros.training.init import initialise_from_scratch
from vggt_ros.training.validation import r_squared

PROBES = ('square', 'square-first', 'square-pair', 'roll')
QY = 4  # the pose encoding's [t, q(xyzw), fov]: q's y, the yaw of a camera turning in place
MAX_SHIFT = 28  # pixels: two patches at 112 px wide
SQUARE = 14  # pixels: one patch


def read_images(bags: list[Path], width: int, every: int) -> torch.Tensor:
    """Every `every`-th frame of each bag, [N, 3, H, W]."""
    return torch.cat([read_frames(bag, width, BagTopics()).images[::every] for bag in bags])


def with_square(image: torch.Tensor, column: int) -> torch.Tensor:
    """The image with a white square at `column`, a third of the way down."""
    marked = image.clone()
    top = image.shape[-2] // 3
    marked[:, top : top + SQUARE, column : column + SQUARE] = 1.0
    return marked


def make_pairs(
    probe: str, images: torch.Tensor, count: int, rng: np.random.Generator, shift_step: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` pairs as one batch [2 * count, 3, H, W] (frame 0, frame 1, ...) and the target;
    shifts are whole multiples of `shift_step` pixels."""
    width = images.shape[-1]
    steps = MAX_SHIFT // shift_step
    shifts = shift_step * rng.integers(-steps, steps + 1, size=count)
    starts = rng.integers(MAX_SHIFT, width - SQUARE - MAX_SHIFT + 1, size=count)
    centre = (width - SQUARE) // 2
    pairs = []
    chosen = rng.integers(len(images), size=count)
    for index, shift, start in zip(chosen, shifts, starts, strict=True):
        image = images[index]
        if probe == 'square':
            pair = (image, with_square(image, centre + shift))
        elif probe == 'square-first':
            pair = (with_square(image, centre + shift), image)
        elif probe == 'square-pair':
            pair = (with_square(image, start), with_square(image, start + shift))
        else:
            pair = (image, torch.roll(image, int(shift), dims=-1))
        pairs.extend(pair)
    return torch.stack(pairs), torch.from_numpy(shifts / MAX_SHIFT).float()


def probe_loss(model: StreamVGGT, pairs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    iterations = model(pairs, 'fp32', ('camera',), sequences=len(target))['pose_enc_iterations']
    qy = iterations[..., QY]
    return (qy[:, 1::2] - target).abs().mean() + qy[:, 0::2].abs().mean()


def score(model: StreamVGGT, pairs: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """R² of frame 1's qy against the target, and how often its sign is the target's."""
    model.eval()
    with torch.no_grad():
        qy = model(pairs, 'fp32', ('camera',), sequences=len(target))['pose_enc'][1::2, QY]
    model.train()
    return r_squared(qy, target), float(((qy > 0) == (target > 0)).float().mean())


def build_model(args: argparse.Namespace) -> StreamVGGT:
    model = initialise_from_scratch(StreamVGGT(args.preset), args.residual_gain)
    if args.checkpoint:
        model.load_state_dict(load_file(args.checkpoint))
    elif args.first_token_std:
        with torch.no_grad():  # the first frame's special tokens unlike the others' from the start
            for tokens in (model.aggregator.camera_token, model.aggregator.register_token):
                tokens.normal_(0, args.first_token_std)
    return model


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('probe', choices=PROBES)
    parser.add_argument('bags', nargs='+', type=Path)
    parser.add_argument('--val', nargs='+', type=Path, required=True)
    parser.add_argument('--preset', default='small')
    parser.add_argument('--image-width', type=int, default=112)
    parser.add_argument('--steps', type=int, default=300)
    parser.add_argument('--batch', type=int, default=16, help='pairs a step')
    parser.add_argument('--lr', type=float, default=3e-4)
    parser.add_argument('--residual-gain', type=float, default=0.1)
    parser.add_argument('--first-token-std', type=float, default=0.0)
    parser.add_argument('--checkpoint', help='start from these weights (a probe run or vggt-train)')
    parser.add_argument('--out', help='save the weights here at the end')
    parser.add_argument('--every', type=int, default=25, help='score every this many steps')
    parser.add_argument(
        '--shift-step', type=int, default=1, help='shifts in multiples of this (14: whole patches)'
    )
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    images = read_images(args.bags, args.image_width, every=8)
    val_images = read_images(args.val, args.image_width, every=10)
    val_pairs = make_pairs(
        args.probe, val_images, 128, np.random.default_rng(args.seed + 1), args.shift_step
    )
    model = build_model(args)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    rng = np.random.default_rng(args.seed)
    for step in range(1, args.steps + 1):
        loss = probe_loss(model, *make_pairs(args.probe, images, args.batch, rng, args.shift_step))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % args.every == 0 or step == args.steps:
            fit, sign = score(model, *val_pairs)
            print(f'step {step}: loss {loss.item():.4f}, val R² {fit:.3f}, sign {sign:.2f}')
    if args.out:
        weights = {name: value.contiguous() for name, value in model.state_dict().items()}
        save_file(weights, args.out)


if __name__ == '__main__':
    main()
