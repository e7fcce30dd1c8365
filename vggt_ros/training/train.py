"""`vggt-train` / `make train`: train a StreamVGGT preset on rosbags with ground truth.

Frame-causal as StreamVGGT: each step is one clip of S frames through the model's causal forward
(frame t attends to frames 0..t), scored by VGGT's losses (vggt_ros.training.losses). From scratch
or fine-tuned from a checkpoint; deterministic for a seed (every step draws its clip from its own
generator, so a resumed run draws what the uninterrupted one would have); safetensors
checkpoints, resumable (`--resume`), a CSV log and a loss plot beside them; with `--val`, the
pose R² and depth AbsRel of bags not trained on at every save (vggt_ros.training.validation);
with `--correspondence`, ground-truth matches supervise the aggregator
(vggt_ros.training.correspondence).

    vggt-synth out/scenes/s1 --seed 1 ...; vggt-train out/scenes/* --preset small --out out/train
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from vggt_ros.checkpoints import load_model
from vggt_ros.model import PRESETS, StreamVGGT
from vggt_ros.stream_types import HEADS, PRECISIONS, RECONSTRUCTOR_HEADS
from vggt_ros.training.correspondence import CorrespondenceLoss
from vggt_ros.training.data import BagTopics, Clip, Frames, batch_clips, draw_clip, read_frames
from vggt_ros.training.init import VGGT_RESIDUAL_GAIN, initialise_from_scratch
from vggt_ros.training.losses import WEIGHTS, clip_loss, depth_scale_loss
from vggt_ros.training.validation import COLUMNS as VALIDATION_COLUMNS
from vggt_ros.training.validation import validate, validation_clips

WEIGHTS_FILE = 'checkpoint.safetensors'
READOUT_PREFIX = 'correspondence.'  # the flow readout, kept beside the optimizer state
STATE_FILE = 'training_state.safetensors'
PROGRESS_FILE = 'training_state.json'
LOG_FILE = 'log.csv'
VALIDATION_FILE = 'validation.csv'
PLOT_FILE = 'loss.png'
LOG_COLUMNS = ('step', 'total', *WEIGHTS, 'lr', 'seconds')
WEIGHT_DECAY = 0.05
UNDECAYED_SUFFIXES = ('token', 'tokens', 'pos_embed')  # learned tokens and positions


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='vggt-train', description=__doc__.split('\n\n')[0])
    parser.add_argument('bags', nargs='+', type=Path, help='rosbags with images, depth, GT TF')
    parser.add_argument('--out', type=Path, default=Path('out/train'))
    parser.add_argument('--preset', choices=sorted(PRESETS), default='small')
    parser.add_argument('--checkpoint', help='fine-tune from these weights (default: scratch)')
    parser.add_argument('--resume', action='store_true', help='continue the run in --out')
    parser.add_argument('--steps', type=int, default=4000)
    parser.add_argument('--clip', type=int, default=8, help='frames per clip (S)')
    parser.add_argument('--batch', type=int, default=1, help='clips per step')
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
    parser.add_argument(
        '--residual-gain',
        type=float,
        default=VGGT_RESIDUAL_GAIN,
        help="from scratch: every LayerScale gain's start (VGGT's 0.01 assumes a pretrained start)",
    )
    parser.add_argument(
        '--decay',
        choices=('all', 'matrices'),
        default='all',
        help='weight-decay every parameter, or only weight matrices and convolutions (not gains, '
        'norms, biases, tokens, positions)',
    )
    parser.add_argument(
        '--correspondence',
        type=lambda text: tuple(int(block) for block in text.split(',')),
        default=(),
        metavar='BLOCKS',
        help='supervise one head of these global blocks (e.g. 0,1) with ground-truth matches to '
        'the first frame, and a flow readout (the flow head where the preset has one; default: '
        'none)',
    )
    parser.add_argument(
        '--depth-scale',
        type=float,
        default=0.0,
        metavar='WEIGHT',
        help="weight of a term on each frame's depth scale against its clip's (needs the depth "
        'head; default 0: none)',
    )
    parser.add_argument('--warmup', type=int, default=200, help='steps of linear warm-up')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu', help='torch device'
    )
    parser.add_argument(
        '--precision',
        choices=PRECISIONS,
        default='auto',
        help="the aggregator's: auto is bf16 on recent GPUs, fp32 on CPUs",
    )
    parser.add_argument(
        '--head-precision',
        choices=('fp32', 'bf16'),
        default='fp32',
        help="the heads': bf16 with --precision bf16 trains 1.4x faster on a CPU with bf16 "
        'instructions (AVX512-BF16, AMX)',
    )
    parser.add_argument(
        '--workers',
        type=int,
        default=0,
        help='processes that read bags and draw clips (0: the training process itself)',
    )
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
    if args.depth_scale and 'depth' not in args.heads:
        parser.error('--depth-scale needs the depth head in --heads')
    if args.batch < 1 or args.workers < 0:
        parser.error('--batch must be at least 1 and --workers at least 0')
    blocks = PRESETS[args.preset].depth
    if not all(0 <= block < blocks for block in args.correspondence):
        parser.error(
            f'--correspondence blocks must be in 0..{blocks - 1} for --preset {args.preset}'
        )
    return args


def learning_rate(step: int, args: argparse.Namespace) -> float:
    """Linear warm-up, then a cosine decay to a tenth."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def parameter_groups(model: nn.Module, decay: str) -> list[dict[str, Any]]:
    """AdamW groups. With decay 'matrices', gains, norms, biases, special tokens and the position
    embedding are not decayed: pulled towards zero they silence a residual branch or a token."""
    decayed, kept = [], []
    for name, parameter in model.named_parameters():
        undecayed = decay == 'matrices' and (
            parameter.ndim <= 1 or name.endswith(UNDECAYED_SUFFIXES)
        )
        (kept if undecayed else decayed).append(parameter)
    groups = [{'params': decayed, 'weight_decay': WEIGHT_DECAY}]
    return groups + [{'params': kept, 'weight_decay': 0.0}] if kept else groups


def build_model(args: argparse.Namespace) -> StreamVGGT:
    torch.manual_seed(args.seed)
    if args.checkpoint:
        model = load_model(args.checkpoint, args.preset)
    else:
        model = initialise_from_scratch(StreamVGGT(args.preset), args.residual_gain)
    return model.to(args.device).train().requires_grad_(True)


class StepBatches(torch.utils.data.Dataset):
    """The batch of each step, drawn from the step's own generator, so any run (resumed, or with
    any number of worker processes) draws the same one."""

    def __init__(self, frames: list[Frames], args: argparse.Namespace) -> None:
        self.frames, self.args = frames, args

    def __len__(self) -> int:
        return self.args.steps

    def __getitem__(self, step: int) -> Clip:
        args = self.args
        rng = np.random.default_rng([args.seed, step])
        clips = []
        for _ in range(args.batch):
            bag = self.frames[int(rng.integers(len(self.frames)))]
            clips.append(draw_clip(bag, args.clip, args.max_stride, rng))
        return batch_clips(clips)


def _read_as_arrays(bag: Path, image_width: int, topics: BagTopics) -> Frames:
    """read_frames for a worker process, its tensors as numpy arrays: tensors sent back to the
    parent would each keep a shared-memory file open there (torch's multiprocessing sharing), two
    per bag, past a usual limit of 1,024 open files."""
    frames = read_frames(bag, image_width, topics)
    return replace(frames, images=frames.images.numpy(), depths=frames.depths.numpy())


def read_bags(bags: list[Path], args: argparse.Namespace, topics: BagTopics) -> list[Frames]:
    """Every bag's frames at the training size, read by args.workers processes."""
    if args.workers <= 1 or len(bags) <= 1:
        return [read_frames(bag, args.image_width, topics) for bag in bags]
    read = partial(_read_as_arrays, image_width=args.image_width, topics=topics)
    with ProcessPoolExecutor(args.workers) as pool:
        return [
            replace(f, images=torch.from_numpy(f.images), depths=torch.from_numpy(f.depths))
            for f in pool.map(read, bags, chunksize=4)
        ]


def batches(frames: list[Frames], start: int, args: argparse.Namespace):
    """Steps start..args.steps' batches, drawn ahead by the worker processes."""
    return torch.utils.data.DataLoader(
        StepBatches(frames, args),
        batch_size=None,
        sampler=range(start, args.steps),
        num_workers=args.workers,
        pin_memory=torch.device(args.device).type == 'cuda',
        prefetch_factor=2 if args.workers else None,
    )


def machine(device: str) -> str:
    """What a run trained on, in words, for the exported weights' description."""
    if torch.device(device).type == 'cuda':
        return f'one {torch.cuda.get_device_name(device)}'
    return f'{os.cpu_count()} CPU cores'


def save(
    model: StreamVGGT,
    optimizer: torch.optim.Optimizer,
    step: int,
    args: argparse.Namespace,
    correspondence: CorrespondenceLoss | None = None,
) -> None:
    """Weights, optimizer state (and the flow readout) and progress (with what the
    export describes), each written whole before it replaces the last."""
    out = args.out
    state = optimizer.state_dict()
    tensors = {
        f'{index}.{name}': value.cpu().contiguous()
        for index, values in state['state'].items()
        for name, value in values.items()
    }
    if correspondence is not None:
        for name, value in correspondence.state_dict().items():
            tensors[READOUT_PREFIX + name] = value.cpu().contiguous()
    for name, content in (
        (WEIGHTS_FILE, {k: v.cpu().contiguous() for k, v in model.state_dict().items()}),
        (STATE_FILE, tensors),
    ):
        save_file(content, out / f'{name}.part')
        (out / f'{name}.part').replace(out / name)
    progress = {
        'step': step,
        'param_groups': state['param_groups'],
        'preset': args.preset,
        'image_width': args.image_width,
        'machine': machine(args.device),
    }
    (out / PROGRESS_FILE).write_text(json.dumps(progress, indent=1))


def restore(
    model: StreamVGGT,
    optimizer: torch.optim.Optimizer,
    out: Path,
    correspondence: CorrespondenceLoss | None = None,
) -> int:
    """Load the run in `out`; the step to continue from."""
    model.load_state_dict(load_file(out / WEIGHTS_FILE))
    progress = json.loads((out / PROGRESS_FILE).read_text())
    state: dict[int, dict[str, torch.Tensor]] = {}
    readout = {}
    for key, value in load_file(out / STATE_FILE).items():
        if key.startswith(READOUT_PREFIX):
            readout[key.removeprefix(READOUT_PREFIX)] = value
            continue
        index, name = key.split('.', 1)
        state.setdefault(int(index), {})[name] = value
    if correspondence is not None:
        correspondence.load_state_dict(readout)
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
    validation: list[Clip],
    args: argparse.Namespace,
    correspondence: CorrespondenceLoss | None = None,
) -> None:
    """Save the run at `step`, and score it on the validation clips if there are any."""
    save(model, optimizer, step, args, correspondence)
    if validation:
        record_validation(model, validation, step, args.out)


def step_losses(
    model: StreamVGGT,
    correspondence: CorrespondenceLoss | None,
    clip: Clip,
    args: argparse.Namespace,
) -> dict[str, torch.Tensor]:
    """The model's forward pass over `clip` and its loss terms."""
    with correspondence.recording() if correspondence else nullcontext():
        out = model(clip.images, args.precision, args.heads, clip.sequences, args.head_precision)
    extra = correspondence(clip) if correspondence else {}
    if args.depth_scale:
        extra['depth_scale'] = depth_scale_loss(out['depth'], clip.depth, clip.sequences)
    return clip_loss(out, clip, extra, {**WEIGHTS, 'depth_scale': args.depth_scale})


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
    if axis.lines:  # a run out of time before its first step has logged nothing
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out / PLOT_FILE, dpi=120)
    plt.close(figure)


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Run (or continue) training; returns the last step's losses."""
    args.out.mkdir(parents=True, exist_ok=True)
    parent, _, child = args.gt_tf.partition(':')
    topics = BagTopics(args.image_topic, args.depth_topic, args.info_topic, parent, child)
    frames = read_bags(args.bags, args, topics)
    validation = validation_clips(read_bags(args.val, args, topics), args.clip, args.max_stride)
    model = build_model(args)
    if torch.device(args.device).type == 'cuda':
        torch.backends.cuda.matmul.allow_tf32 = True  # the fp32 heads, at the GPU's speed
    correspondence = None
    trained: nn.Module = model
    if args.correspondence:
        correspondence = CorrespondenceLoss(model, args.correspondence).to(args.device)
        trained = nn.ModuleList([model, correspondence])  # the model's parameters come first
    optimizer = torch.optim.AdamW(parameter_groups(trained, args.decay), lr=args.lr)
    start = restore(model, optimizer, args.out, correspondence) if args.resume else 0
    log = (args.out / LOG_FILE).open('a' if args.resume else 'w', newline='')
    writer = csv.DictWriter(log, LOG_COLUMNS)
    if not args.resume:
        writer.writeheader()
    if not args.resume:
        checkpoint(model, optimizer, 0, validation, args, correspondence)
    saved = start  # the last step checkpointed, so a deadline right after it writes nothing twice
    terms: dict[str, float] = {}
    deadline = time.monotonic() + 60 * args.max_minutes if args.max_minutes else math.inf
    steps = zip(range(start, args.steps), batches(frames, start, args), strict=True)
    began = time.perf_counter()
    with log, tqdm(steps, total=args.steps - start, disable=args.quiet, unit='step') as bar:
        for step, batch in bar:
            if time.monotonic() > deadline:
                if step != saved:
                    checkpoint(model, optimizer, step, validation, args, correspondence)
                break
            for group in optimizer.param_groups:
                group['lr'] = learning_rate(step, args)
            clip = batch.to(args.device)
            losses = step_losses(model, correspondence, clip, args)
            optimizer.zero_grad(set_to_none=True)
            losses['total'].backward()
            torch.nn.utils.clip_grad_norm_(trained.parameters(), 1.0)
            optimizer.step()
            terms = {name: float(value.detach()) for name, value in losses.items()}
            ended = time.perf_counter()
            writer.writerow(
                {**terms, 'step': step, 'lr': learning_rate(step, args), 'seconds': ended - began}
            )
            began = ended
            bar.set_postfix(loss=f'{terms["total"]:.3f}')
            if (step + 1) % args.save_every == 0 or step + 1 == args.steps:
                log.flush()
                checkpoint(model, optimizer, step + 1, validation, args, correspondence)
                saved = step + 1
                began = time.perf_counter()
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
