"""`vggt-bench` / `python -m vggt_ros.bench`: run every section, write bench.json and bench.md.

Sections, per model (the 1B dimensions at a reduced resolution, the tiny preset at a larger one):
1-3 whole streams (flat cost, reference-style step, key/value bytes); 4-5a one global block at
the 1B dimensions; 5b merging in whole steps; 6 efficiency; 7 and 10 the node through real rclpy
(skipped, and said so, without rclpy); 8 memory; 9 GPU; 11 heads on demand; 12 evaluator memory;
13 re-anchoring; 14 the accuracy of each speed option (the shipped small model).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from vggt_ros.bench.accuracy import speed_option_accuracy
from vggt_ros.bench.blocks import BLOCK_PRESET, block_vs_reference
from vggt_ros.bench.evaluator import evaluator_memory
from vggt_ros.bench.flops import efficiency, matmul_throughput
from vggt_ros.bench.gpu import gpu_frames_per_s
from vggt_ros.bench.heads import heads_on_demand
from vggt_ros.bench.memory import MEMORY_SIZE, MEMORY_WINDOW, memory_growth
from vggt_ros.bench.reanchoring import REANCHOR_EVERY, reanchoring_cost
from vggt_ros.bench.report import markdown
from vggt_ros.bench.streams import bench_model
from vggt_ros.bench.token_merging import MERGE_WINDOWS, block_merging, merging_steps
from vggt_ros.model import PRESETS as CONFIGS
from vggt_ros.model.synthetic_weights import synthetic_model
from vggt_ros.synthetic import HELD_OUT_SEEDS

PRESETS = ('streamvggt-1b', 'tiny')
# Tuned so the default run takes about 11-13 minutes on 2 CPU cores, --quick about four.
DEFAULTS = dict(
    window=8,
    cached=64,
    repeats=5,
    tiny_repeats=15,
    block_repeats=5,
    warmup=2,
    size=(42, 70),
    tiny_size=(224, 308),
    block_size=(518, 392),
    memory_frames=2000,
    node_frames=20,
    gpu_frames=30,
    chaos_frames=10_000,
    heads_size=(126, 168),
    eval_frames=5000,
    reanchor_frames=600,
    accuracy_frames=120,
)
QUICK = dict(
    window=2,
    cached=16,
    repeats=3,
    tiny_repeats=5,
    block_repeats=3,
    warmup=1,
    size=(28, 42),
    tiny_size=(112, 154),
    block_size=(518, 154),
    memory_frames=400,
    node_frames=5,
    gpu_frames=10,
    chaos_frames=500,
    heads_size=(28, 42),
    eval_frames=500,
    reanchor_frames=120,
    accuracy_frames=12,
)


def parse_size(text: str) -> tuple[int, int]:
    """'HxW' -> (H, W)."""
    try:
        height, width = (int(side) for side in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected HxW such as 42x70, got {text!r}') from None
    return height, width


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='vggt-bench', description=__doc__.split('\n')[0])
    parser.add_argument('--out', type=Path, default=Path('out/bench'), help='bench.json/.md here')
    parser.add_argument('--quick', action='store_true', help='smaller settings, a few minutes')
    parser.add_argument('--window', type=int, help=f'W (default {DEFAULTS["window"]})')
    parser.add_argument(
        '--cached', type=int, help=f'cached frames for section 2 (default {DEFAULTS["cached"]})'
    )
    parser.add_argument('--repeats', type=int, help=f'steps per 1B figure ({DEFAULTS["repeats"]})')
    parser.add_argument(
        '--tiny-repeats', type=int, help=f'steps per tiny figure ({DEFAULTS["tiny_repeats"]})'
    )
    parser.add_argument(
        '--block-repeats', type=int, help=f'steps per block figure ({DEFAULTS["block_repeats"]})'
    )
    parser.add_argument('--warmup', type=int, help=f'untimed frames first ({DEFAULTS["warmup"]})')
    parser.add_argument('--size', type=parse_size, help='1B input HxW (default 42x70)')
    parser.add_argument('--tiny-size', type=parse_size, help='tiny input HxW (default 224x308)')
    parser.add_argument(
        '--block-size', type=parse_size, help='sections 4-5a frame HxW (default 518x392; 518x154)'
    )
    parser.add_argument('--presets', nargs='+', choices=PRESETS, default=list(PRESETS))
    parser.add_argument(
        '--merge-windows', nargs='+', type=int, default=list(MERGE_WINDOWS), help='section 5'
    )
    parser.add_argument(
        '--merge-presets',
        nargs='*',
        choices=PRESETS,
        default=['tiny'],
        help='whole-step merging (5b) with these presets at their sizes (default: tiny)',
    )
    parser.add_argument('--memory-frames', type=int, help='section 8 stream length (2000)')
    parser.add_argument('--node-frames', type=int, help='section 7 end-to-end frames (20)')
    parser.add_argument('--gpu-frames', type=int, help='section 9 timed frames (30)')
    parser.add_argument('--chaos-frames', type=int, help='section 10 chaos soak frames (10000)')
    parser.add_argument(
        '--heads-preset',
        choices=PRESETS,
        default=BLOCK_PRESET,
        help=f'section 11 model (default {BLOCK_PRESET}; timed frames: its --repeats)',
    )
    parser.add_argument(
        '--heads-size', type=parse_size, help='section 11 input HxW (default 126x168; 28x42)'
    )
    parser.add_argument('--eval-frames', type=int, help='section 12 bag length (5000; 500)')
    parser.add_argument(
        '--reanchor-preset',
        choices=PRESETS,
        default='tiny',
        help='section 13 model (default tiny), at its --size or --tiny-size',
    )
    parser.add_argument('--reanchor-frames', type=int, help='section 13 loop length (600; 120)')
    parser.add_argument(
        '--reanchor-every', type=int, default=REANCHOR_EVERY, help='section 13 anchor.max_frames'
    )
    parser.add_argument(
        '--accuracy-frames',
        type=int,
        help='section 14 frames per held-out scene (120, its whole path; 12)',
    )
    parser.add_argument(
        '--accuracy-worlds', type=int, default=2, help='section 14 held-out worlds (2)'
    )
    parser.add_argument(
        '--accuracy-checkpoint', help='section 14 weights (default: the shipped small model)'
    )
    parser.add_argument('--threads', type=int, help="torch threads (default: torch's own)")
    parser.add_argument('--seed', type=int, default=0, help='weights and images')
    args = parser.parse_args(argv)
    for name, default in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    return args


def environment(argv: list[str] | None) -> dict[str, Any]:
    return {
        'torch': torch.__version__,
        'device': 'cpu',
        'threads': torch.get_num_threads(),
        'cpu_count': os.cpu_count(),
        'platform': platform.platform(terse=True),
        'python': platform.python_version(),
        'command': ' '.join(['vggt-bench', *(sys.argv[1:] if argv is None else argv)]),
    }


def through_rclpy(section: Callable[[ModuleType], dict[str, Any]]) -> dict[str, Any]:
    """`section` of vggt_ros.bench.node, or why it was skipped: that module needs rclpy, so the
    rest of the benchmark runs where ROS 2 is missing."""
    try:
        from vggt_ros.bench import node  # noqa: PLC0415 - needs rclpy
    except ImportError as error:
        return {'skipped': f'rclpy not importable: {error}'}
    return section(node)


def _progress(text: str) -> None:
    print(f'vggt-bench: {text}', file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    start = time.perf_counter()
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = {'streamvggt-1b': args.size, 'tiny': args.tiny_size}
    repeats = {'streamvggt-1b': args.repeats, 'tiny': args.tiny_repeats}
    windows = tuple(args.merge_windows)
    results, steps, heads, reanchoring = [], [], {}, {}
    matmul = matmul_throughput(max(args.repeats, 3))
    every_preset = [*args.presets, *args.merge_presets, args.heads_preset, args.reanchor_preset]
    for preset in dict.fromkeys(every_preset):
        _progress(f'{preset} at {sizes[preset]}')
        model = synthetic_model(preset, args.seed)
        if preset in args.presets:
            result = bench_model(
                model,
                sizes[preset],
                args.window,
                args.cached,
                repeats[preset],
                args.warmup,
                args.seed,
            )
            step_s = result['at_frame_n']['window_s']
            result['efficiency'] = efficiency(
                model.config, sizes[preset], args.window, step_s, matmul
            )
            results.append({'preset': preset, **result})
        if preset in args.merge_presets:
            result = merging_steps(model, sizes[preset], windows, repeats[preset], seed=args.seed)
            steps.append({'preset': preset, **result})
        if preset == args.heads_preset:
            _progress(f'heads on demand, {preset} at {args.heads_size}')
            result = heads_on_demand(model, args.heads_size, repeats[preset], seed=args.seed)
            heads = {'preset': preset, **result}
        if preset == args.reanchor_preset:
            _progress(f're-anchoring, {preset} at {sizes[preset]}')
            reanchoring = reanchoring_cost(
                model, preset, sizes[preset], args.reanchor_frames, args.reanchor_every
            )
        del model  # before the next preset is built: never two models in memory
    config = CONFIGS[BLOCK_PRESET]
    _progress(f'{BLOCK_PRESET} global block at {args.block_size}')
    block = block_vs_reference(config, args.block_size, args.cached, args.block_repeats, args.seed)
    merging = block_merging(config, args.block_size, windows, args.block_repeats, seed=args.seed)
    _progress('node overhead, memory, GPU, chaos soak, evaluator memory')
    tiny = synthetic_model('tiny', args.seed)
    _progress('accuracy of the speed options, small preset on held-out worlds')
    accuracy = speed_option_accuracy(
        args.out / 'accuracy',
        args.accuracy_frames,
        range(HELD_OUT_SEEDS.start, HELD_OUT_SEEDS.start + args.accuracy_worlds),
        args.accuracy_checkpoint,
    )
    report = {
        'environment': environment(argv),
        'matmul': matmul,
        'node': through_rclpy(
            lambda node: node.node_overhead(tiny, args.tiny_repeats, args.node_frames, results)
        ),
        'memory': memory_growth(tiny, MEMORY_SIZE, MEMORY_WINDOW, args.memory_frames, args.seed),
        'gpu': gpu_frames_per_s(args.gpu_frames),
        'chaos': through_rclpy(lambda node: node.chaos_soak(tiny, args.chaos_frames, args.seed)),
        'evaluator': evaluator_memory(tiny, 'tiny', args.eval_frames, args.seed),
        'results': results,
        'global_block': block,
        'block_merging': merging,
        'merging_steps': steps,
        'heads': heads,
        'reanchoring': reanchoring,
        'accuracy': accuracy,
        'wall_s': time.perf_counter() - start,
    }
    text = markdown(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / 'bench.json').write_text(json.dumps(report, indent=1) + '\n')
    (args.out / 'bench.md').write_text(text)
    print(text)
