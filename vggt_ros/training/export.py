"""Ship a vggt-train run: its weights in fp16, saying in the file's metadata what they are.

    python -m vggt_ros.training.export [EARLIER_RUN ...] out/train/run out/train/small.safetensors

A run fine-tuned from an earlier one's weights (vggt-train --checkpoint) is exported with the
runs before it, in the order they trained: the weights are the last run's, and the steps and
minutes those of all of them.

fp16 halves the file (the small preset: 26 MB, under the repository's 30 MB) and costs nothing
that matters: the weights are loaded back as fp32, and the largest relative rounding error is
2^-11. The metadata's `description` is what the node logs and vggt-eval's report prints.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from vggt_ros.training.train import LOG_FILE, PROGRESS_FILE, WEIGHTS_FILE


def training_facts(runs: Sequence[Path]) -> dict[str, str]:
    """Steps and training minutes of runs that trained one after the other, and the machine,
    preset and image width of the last, from their progress files and logs (where an interrupted
    run logged steps that its resumption ran again, the later rows count); a run saved before
    these were recorded was the small preset at 112 on a CPU."""
    steps, seconds = 0, 0.0
    for run in runs:
        progress = json.loads((run / PROGRESS_FILE).read_text())
        with (run / LOG_FILE).open() as file:
            per_step = {row['step']: float(row['seconds']) for row in csv.DictReader(file)}
        steps, seconds = steps + progress['step'], seconds + sum(per_step.values())
    return {
        'steps': str(steps),
        'training_minutes': f'{seconds / 60:.0f}',
        'machine': progress.get('machine', f'{os.cpu_count()} CPU cores'),
        'preset': progress.get('preset', 'small'),
        'image_width': str(progress.get('image_width', 112)),
    }


def export(runs: Sequence[Path], out: Path, recipe: str) -> Path:
    """Write the last of `runs`' weights to `out` in fp16 with a description of all of them;
    `out`."""
    weights = load_file(runs[-1] / WEIGHTS_FILE)
    count = sum(tensor.numel() for tensor in weights.values())
    facts = training_facts(runs)
    description = (
        f'{facts["preset"]} preset, {count / 1e6:.1f} M parameters, trained from scratch by '
        f'vggt-train for {facts["steps"]} steps ({facts["training_minutes"]} min on '
        f'{facts["machine"]}) on the synthetic training worlds ({recipe}), at image_width '
        f'{facts["image_width"]}'
    )
    metadata = {'description': description, 'recipe': recipe, **facts}
    half = {name: tensor.to(torch.float16).contiguous() for name, tensor in weights.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(half, out, metadata=metadata)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument(
        'runs', nargs='+', type=Path, help='vggt-train --out folders, in the order they trained'
    )
    parser.add_argument('out', type=Path, help='the .safetensors file to write')
    parser.add_argument('--recipe', default='make train', help='how the run was made')
    args = parser.parse_args(argv)
    path = export(args.runs, args.out, args.recipe)
    print(f'{path}: {path.stat().st_size / 1e6:.1f} MB')


if __name__ == '__main__':
    main()
