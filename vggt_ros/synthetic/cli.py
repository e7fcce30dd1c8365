"""`vggt-synth`: render a synthetic scene with exact ground truth into a bag.

vggt-synth out/walk --trajectory walk --frames 120 --width 320 --height 240
vggt-synth out/train-17 --trajectory orbit --seed 17     # a world of its own (see variety)
vggt-synth out/robot --robot --wheel-odometry --wheel-noise 0.02
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vggt_ros.evaluation.bag_io import STORAGES
from vggt_ros.synthetic.robot import (
    GT_CAMERA_FRAME,
    make_robot_sequence,
    robot_bag_contents,
    write_robot_bag,
)
from vggt_ros.synthetic.sequence import (
    CAMERA_FRAME,
    TOPICS,
    WORLD_FRAME,
    make_sequence,
    write_bag,
)
from vggt_ros.synthetic.trajectories import TRAJECTORIES
from vggt_ros.synthetic.variety import HELD_OUT_SEEDS, TRAIN_SEEDS


def _span(seeds: range) -> str:
    return f'{seeds.start}-{seeds.stop - 1}'


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='vggt-synth', description=__doc__.split('\n\n')[0])
    parser.add_argument(
        'output', type=Path, help='bag to create (a folder for rosbag2, a .bag file for rosbag1)'
    )
    parser.add_argument('--trajectory', choices=sorted(TRAJECTORIES), default='walk')
    parser.add_argument('--frames', type=int, default=120)
    parser.add_argument('--width', type=int, default=320)
    parser.add_argument('--height', type=int, default=240)
    parser.add_argument('--fps', type=float, default=15.0)
    parser.add_argument('--fov', type=float, default=70.0, help='horizontal field of view, degrees')
    parser.add_argument('--storage', choices=STORAGES, default='mcap')
    parser.add_argument(
        '--seed',
        type=int,
        help='draw a world of its own: room, objects, materials, light and path (training seeds '
        f'{_span(TRAIN_SEEDS)}, held out {_span(HELD_OUT_SEEDS)}); without it the default room. '
        'With --robot the room stays the default and the seed sets texture and wheel noise',
    )
    robot = parser.add_argument_group('robot scenes')
    robot.add_argument(
        '--robot',
        action='store_true',
        help='camera on a tilted mount on a base driving on the floor: the mount on /tf_static, '
        f'ground truth as world -> {GT_CAMERA_FRAME}',
    )
    robot.add_argument(
        '--wheel-odometry', action='store_true', help='also odom -> base_link from noisy wheels'
    )
    robot.add_argument(
        '--wheel-noise',
        type=float,
        default=0.02,
        help='std of the wheel odometry error after 1 m travelled or 1 rad turned',
    )
    return parser


def _describe(topics: dict[str, list[tuple[str, str]]]) -> str:
    """'topic (parent -> child, ...)' for each TF topic."""
    return '; '.join(
        f'{topic} ({", ".join(f"{parent} -> {child}" for parent, child in edges)})'
        for topic, edges in topics.items()
    )


def _world_name(args: argparse.Namespace) -> str:
    """Which world was rendered, and which side of the seed split it is on."""
    if args.seed is None or args.robot:
        return 'default room'
    if args.seed in HELD_OUT_SEEDS:
        return f'world {args.seed}, held out'
    return f'world {args.seed}, {"training" if args.seed in TRAIN_SEEDS else "in neither split"}'


def main(argv: list[str] | None = None) -> None:
    """Console entry point `vggt-synth`."""
    args = _parser().parse_args(argv)
    if args.storage == 'rosbag1' and args.output.suffix != '.bag':  # what readers recognise
        args.output = args.output.with_name(f'{args.output.name}.bag')
    shape = (args.trajectory, args.frames, args.width, args.height, args.fps, args.fov)
    start = time.perf_counter()
    seed = 0 if args.seed is None else args.seed
    if args.robot:
        sequence = make_robot_sequence(*shape, seed=seed, wheel_noise=args.wheel_noise)
        path = write_robot_bag(
            sequence, args.output, args.storage, args.wheel_odometry, progress=True
        )
        tf_topics = robot_bag_contents(args.wheel_odometry)
        truth = f'{WORLD_FRAME}:{GT_CAMERA_FRAME}'
    else:
        sequence = make_sequence(*shape, seed=seed, varied=args.seed is not None)
        path = write_bag(sequence, args.output, args.storage, progress=True)
        tf_topics = {TOPICS['tf']: [(WORLD_FRAME, CAMERA_FRAME)]}
        truth = f'{WORLD_FRAME}:{CAMERA_FRAME}'
    camera_topics = ', '.join(TOPICS[name] for name in ('image', 'info', 'depth'))
    print(
        f'wrote {len(sequence)} frames ({args.width}x{args.height}, {args.trajectory}, '
        f'{_world_name(args)}) to {path} '
        f'in {time.perf_counter() - start:.1f} s; topics: {camera_topics} (frame {CAMERA_FRAME}); '
        f'{_describe(tf_topics)}; score with vggt-eval {path} --gt-tf {truth}'
    )
