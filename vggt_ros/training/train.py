"""`vggt-train` / `make train`: train a StreamVGGT preset on rosbags with ground truth.

Frame-causal as StreamVGGT: each step is one clip of S frames through the model's causal forward
(frame t attends to frames 0..t), scored by VGGT's losses (vggt_ros.training.losses). From scratch
or fine-tuned from a checkpoint; deterministic for a seed (every step draws its clip from its own
generator, so a resumed run draws what the uninterrupted one would have); safetensors
checkpoints, resumable (`--resume`), a CSV log and a loss plot beside them; with `--val`, the
pose R² and depth AbsRel of bags not trained on at every save (vggt_ros.training.validation).

    vggt-synth out/scenes/s1 --seed 1 ...; vggt-train out/scenes/* --preset small --out out/train
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from vggt_ros.checkpoints import load_model
from vggt_ros.model import PRESETS, StreamVGGT
from vggt_ros.stream_types import HEADS, RECONSTRUCTOR_HEADS
from vggt_ros.training.data import BagTopics, Clip, Frames, clip_indices, make_clip, read_frames
from vggt_ros.training.init import initialise_from_scratch
from vggt_ros.training.losses import WEIGHTS, clip_loss
from vggt_ros.training.validation import COLUMNS as VALIDATION_COLUMNS
from vggt_ros.training.validation import validate, validation_clips

WEIGHTS_FILE = 'checkpoint.safetensors'
STATE_FILE = 'training_state.safetensors'
PROGRESS_FILE = 'training_state.json'
LOG_FILE = 'log.csv'
VALIDATION_FILE = 'validation.csv'
PLOT_FILE = 'loss.png'
LOG_COLUMNS = ('step', 'total', *WEIGHTS, 'lr', 'seconds')


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='vggt-train', description=__doc__.split('\n\n')[0])
    parser.add_argument('bags', nargs='+', type=Path, help='rosbags with images, depth, GT TF')
    parser.add_argument('--out', type=Path, default=Path('out/train'))
    parser.add_argument('--preset', choices=sorted(PRESETS), default='small')
    parser.add_argument('--checkpoint', help='fine-tune from these weights (default: scratch)')
    parser.add_argument('--resume', action='store_true', help='continue the run in --out')
    parser.add_argument('--steps', type=int, default=4000)
    parser.add_argument('--clip', type=int, default=8, help='frames per clip (S)')
    parser.add_argument('--max-stride', type=int, default=3, help='frames skipped within a clip')
    parser.add_argument('--image-width', type=int, default=112)
    parser.add_argument(
        '--heads',
        type=lambda text: tuple(text.split(',')),
        default=RECONSTRUCTOR_HEADS,
        help=f'heads to train, comma-separated from {",".join(HEADS)} (default: those the node '
        'runs; VGGT also trains without the point loss by default)',
    )
    parser.add_argument('--lr', type=float, default=3e-4)
    parser.add_argument('--warmup', type=int, default=200, help='steps of linear warm-up')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--save-every', type=int, default=250)
    parser.add_argument(
        '--val',
        nargs='+',
        type=Path,
        default=[],
        help=f'bags of worlds not trained on: pose R² and depth AbsRel at every save, in '
        f'{VALIDATION_FILE}',
    )
    parser.add_argument(
        '--max-minutes', type=float, help='stop (and save) after this much training time'
    )
    parser.add_argument('--image-topic', default=BagTopics.image)
    parser.add_argument('--depth-topic', default=BagTopics.depth)
    parser.add_argument('--info-topic', default=BagTopics.info)
    parser.add_argument(
        '--gt-tf', default=f'{BagTopics.gt_parent}:{BagTopics.gt_child}', help='PARENT:CHILD'
    )
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    args = parser.parse_args(argv)
    if not args.heads or not set(args.heads) <= set(HEADS) or 'camera' not in args.heads:
        parser.error(f'--heads needs camera and some of {",".join(HEADS)}, got {args.heads}')
    return args


def learning_rate(step: int, args: argparse.Namespace) -> float:
    """Linear warm-up, then a cosine decay to a tenth."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def build_model(args: argparse.Namespace) -> StreamVGGT:
    torch.manual_seed(args.seed)
    if args.checkpoint:
        model = load_model(args.checkpoint, args.preset)
    else:
        model = initialise_from_scratch(StreamVGGT(args.preset))
    return model.train().requires_grad_(True)


def step_clip(frames: list[Frames], step: int, args: argparse.Namespace):
    """The clip of step `step`: from its own generator, so any run draws the same one."""
    rng = np.random.default_rng([args.seed, step])
    bag = frames[int(rng.integers(len(frames)))]
    stride = int(rng.integers(1, args.max_stride + 1))
    stride = min(stride, max(1, (len(bag) - 1) // max(1, args.clip - 1)))
    return make_clip(bag, clip_indices(len(bag), args.clip, stride, rng))


def save(model: StreamVGGT, optimizer: torch.optim.Optimizer, step: int, out: Path) -> None:
    """Weights, optimizer state and progress, each written whole before it replaces the last."""
    state = optimizer.state_dict()
    tensors = {
        f'{index}.{name}': value.contiguous()
        for index, values in state['state'].items()
        for name, value in values.items()
    }
    for name, content in (
        (WEIGHTS_FILE, {k: v.contiguous() for k, v in model.state_dict().items()}),
        (STATE_FILE, tensors),
    ):
        save_file(content, out / f'{name}.part')
        (out / f'{name}.part').replace(out / name)
    progress = {'step': step, 'param_groups': state['param_groups']}
    (out / PROGRESS_FILE).write_text(json.dumps(progress, indent=1))


def restore(model: StreamVGGT, optimizer: torch.optim.Optimizer, out: Path) -> int:
    """Load the run in `out`; the step to continue from."""
    model.load_state_dict(load_file(out / WEIGHTS_FILE))
    progress = json.loads((out / PROGRESS_FILE).read_text())
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in load_file(out / STATE_FILE).items():
        index, name = key.split('.', 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({'state': state, 'param_groups': progress['param_groups']})
    return int(progress['step'])


def record_validation(model: StreamVGGT, clips: list[Clip], step: int, out: Path) -> None:
    """Append the validation metrics at `step` to VALIDATION_FILE (a new run starts it anew)."""
    path = out / VALIDATION_FILE
    new = step == 0 or not path.exists()
    with path.open('w' if new else 'a', newline='') as file:
        writer = csv.DictWriter(file, VALIDATION_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow({'step': step, **validate(model, clips)})


def checkpoint(
    model: StreamVGGT,
    optimizer: torch.optim.Optimizer,
    step: int,
    out: Path,
    validation: list[Clip],
) -> None:
    """Save the run at `step`, and score it on the validation clips if there are any."""
    save(model, optimizer, step, out)
    if validation:
        record_validation(model, validation, step, out)


def plot_losses(out: Path) -> None:
    import matplotlib  # noqa: PLC0415 - only to draw the plot

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # noqa: PLC0415

    with (out / LOG_FILE).open() as file:
        rows = list(csv.DictReader(file))
    steps = [int(row['step']) for row in rows]
    figure, axis = plt.subplots(figsize=(7, 4))
    for name in ('total', *WEIGHTS):
        values = [float(row[name]) for row in rows if row[name]]
        if values:
            axis.plot(steps[: len(values)], values, label=name, linewidth=1)
    axis.set(xlabel='step', ylabel='loss', title='vggt-train')
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out / PLOT_FILE, dpi=120)
    plt.close(figure)


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Run (or continue) training; returns the last step's losses."""
    args.out.mkdir(parents=True, exist_ok=True)
    parent, _, child = args.gt_tf.partition(':')
    topics = BagTopics(args.image_topic, args.depth_topic, args.info_topic, parent, child)
    frames = [read_frames(bag, args.image_width, topics) for bag in args.bags]
    validation = validation_clips(
        [read_frames(bag, args.image_width, topics) for bag in args.val], args.clip, args.max_stride
    )
    model = build_model(args)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    start = restore(model, optimizer, args.out) if args.resume else 0
    log = (args.out / LOG_FILE).open('a' if args.resume else 'w', newline='')
    writer = csv.DictWriter(log, LOG_COLUMNS)
    if not args.resume:
        writer.writeheader()
    if validation and not args.resume:
        record_validation(model, validation, 0, args.out)
    terms: dict[str, float] = {}
    deadline = time.monotonic() + 60 * args.max_minutes if args.max_minutes else math.inf
    with log, tqdm(range(start, args.steps), disable=args.quiet, unit='step') as bar:
        for step in bar:
            if time.monotonic() > deadline:
                checkpoint(model, optimizer, step, args.out, validation)
                break
            began = time.perf_counter()
            for group in optimizer.param_groups:
                group['lr'] = learning_rate(step, args)
            clip = step_clip(frames, step, args)
            losses = clip_loss(model(clip.images, 'fp32', args.heads), clip)
            optimizer.zero_grad(set_to_none=True)
            losses['total'].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            terms = {name: float(value.detach()) for name, value in losses.items()}
            writer.writerow(
                {**terms, 'step': step, 'lr': learning_rate(step, args),
                 'seconds': time.perf_counter() - began}
            )  # fmt: skip
            bar.set_postfix(loss=f'{terms["total"]:.3f}')
            if (step + 1) % args.save_every == 0 or step + 1 == args.steps:
                log.flush()
                checkpoint(model, optimizer, step + 1, args.out, validation)
    plot_losses(args.out)
    return terms


def main(argv: list[str] | None = None) -> None:
    """Console entry point `vggt-train`."""
    args = parse_args(argv)
    terms = train(args)
    steps = json.loads((args.out / PROGRESS_FILE).read_text())['step']
    print(
        f'vggt-train: {steps} of {args.steps} steps, '
        f'last loss {terms.get("total", float("nan")):.4f}; '
        f'weights {args.out / WEIGHTS_FILE}, log {args.out / LOG_FILE}, plot {args.out / PLOT_FILE}'
    )


if __name__ == '__main__':
    main()
