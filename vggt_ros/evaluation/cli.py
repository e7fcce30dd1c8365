"""`vggt-eval` / `ros2 run vggt_ros evaluate`: score the reconstructor on a rosbag.

    vggt-eval BAG --out out/eval --gt-tf world:camera_optical_frame --depth-topic /camera/depth

Every stride-selected frame of the image topic goes through the same Reconstructor as the node,
in bag order, deterministically. Bag problems and bad options end with a one-line message and
exit code 2, not a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rosbags.highlevel import AnyReader

from vggt_ros.evaluation import ground_truth, metrics
from vggt_ros.evaluation.bag_io import BagError, open_bag
from vggt_ros.evaluation.replay import Replay, replay
from vggt_ros.evaluation.report import RANDOM_WEIGHTS_BANNER, write_report
from vggt_ros.model.merging import MergingConfig
from vggt_ros.reconstructor import Reconstructor

EXIT_USAGE = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='vggt-eval', description=__doc__.split('\n\n')[0])
    parser.add_argument('bag', type=Path, help='rosbag2 folder (mcap/sqlite3) or ROS 1 .bag')
    parser.add_argument('--out', type=Path, default=Path('out/eval'), help='output folder')
    parser.add_argument('--image-topic', default='/camera/image_raw')
    parser.add_argument('--depth-topic', help='GT depth Image topic (32FC1 m or 16UC1 mm)')
    truth = parser.add_mutually_exclusive_group()
    truth.add_argument('--gt-tf', metavar='PARENT:CHILD', help='GT camera poses on /tf')
    truth.add_argument('--gt-topic', help='GT PoseStamped / Odometry topic')
    truth.add_argument('--gt-tum', type=Path, help='GT TUM trajectory file')
    parser.add_argument('--checkpoint', help='weights file or Hugging Face id (none: random)')
    parser.add_argument('--preset', default='streamvggt-1b')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--window', type=int, help='frames kept in the KV cache (default: all)')
    parser.add_argument('--image-width', type=int, default=518)
    parser.add_argument('--frame-stride', type=int, default=1)
    parser.add_argument('--merging', choices=('on', 'off'), default='off', help='token merging')
    parser.add_argument('--max-frames', type=int)
    parser.add_argument(
        '--max-time-diff',
        type=float,
        default=0.01,
        help='seconds within which a frame matches a GT pose or depth image',
    )
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    return parser.parse_args(argv)


def load_ground_truth(
    args: argparse.Namespace, reader: AnyReader
) -> ground_truth.Trajectory | None:
    """The GT trajectory the options name, if any."""
    if args.gt_tf:
        parent, sep, child = args.gt_tf.partition(':')
        if not (sep and parent and child):
            raise ValueError(f'--gt-tf takes PARENT:CHILD, got {args.gt_tf!r}')
        return ground_truth.from_tf(reader, parent, child)
    if args.gt_topic:
        return ground_truth.from_pose_topic(reader, args.gt_topic)
    return ground_truth.read_tum(args.gt_tum) if args.gt_tum else None


def score(result: Replay, truth: ground_truth.Trajectory | None, max_diff: float) -> dict:
    """Every metric the available ground truth allows."""
    scored = metrics.latency_metrics(result.latencies, result.wall_seconds)
    scored['frames'] = len(result.trajectory)
    if truth is not None:
        scored.update(metrics.trajectory_metrics(result.trajectory, truth, max_diff))
    if result.gt_depth:
        scored.update(metrics.depth_metrics(result.predicted_depth, result.gt_depth))
    return scored


def run(args: argparse.Namespace, reconstructor: Reconstructor, random_weights: bool) -> Path:
    """Replay the bag through `reconstructor`, score it and write the report; its path."""
    with open_bag(args.bag) as reader:
        truth = load_ground_truth(args, reader)
        result = replay(
            reconstructor,
            reader,
            args.image_topic,
            args.depth_topic,
            args.frame_stride,
            args.max_frames,
            args.max_time_diff,
            progress=not args.quiet,
        )
    if args.depth_topic and not result.gt_depth:
        print(
            f'WARNING: no {args.depth_topic} image within --max-time-diff {args.max_time_diff} s'
            ' of any frame: depth is not scored',
            file=sys.stderr,
        )
    return write_report(result, score(result, truth, args.max_time_diff), random_weights, args.out)


def build_reconstructor(args: argparse.Namespace) -> Reconstructor:
    return Reconstructor.from_checkpoint(
        args.checkpoint,
        args.preset,
        args.device,
        image_width=args.image_width,
        window=args.window,
        merging=MergingConfig() if args.merging == 'on' else None,
    )


def main(argv: list[str] | None = None, reconstructor: Reconstructor | None = None) -> int:
    """Entry point; `reconstructor` replaces the one the options describe (tests, stand-ins)."""
    args = parse_args(argv)
    random_weights = args.checkpoint is None and reconstructor is None
    if random_weights:
        print(f'WARNING: {RANDOM_WEIGHTS_BANNER}', file=sys.stderr)
    try:
        path = run(args, reconstructor or build_reconstructor(args), random_weights)
    except (BagError, ValueError) as exc:  # CheckpointError is a ValueError
        print(f'vggt-eval: error: {exc}', file=sys.stderr)
        return EXIT_USAGE
    print(f'report: {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
