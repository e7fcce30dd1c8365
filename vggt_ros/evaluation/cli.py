"""`vggt-eval` / `ros2 run vggt_ros evaluate`: score the reconstructor on a rosbag.

    vggt-eval BAG --out out/eval --gt-tf world:camera_optical_frame --depth-topic /camera/depth

Every stride-selected frame of the image topic goes through the same Reconstructor as the node,
in bag order, deterministically. Bag problems and bad options end with a one-line message and
exit code 2, not a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rosbags.highlevel import AnyReader

from vggt_ros import config_files, params
from vggt_ros.calibration import distortion_note
from vggt_ros.checkpoints import missing_checkpoint, weights_description
from vggt_ros.evaluation import baselines, ground_truth, metrics
from vggt_ros.evaluation.bag_io import BagError, first_message, open_bag
from vggt_ros.evaluation.replay import Replay, replay
from vggt_ros.evaluation.report import RANDOM_WEIGHTS_BANNER, write_report
from vggt_ros.pipeline import Outcome, StreamPipeline, reconstructor_from_parameters
from vggt_ros.reconstructor import Reconstructor

EXIT_USAGE = 2


# Node parameters that change nothing in an offline replay: accepted in a params file, no flag.
NODE_ONLY = (
    'image_transport',
    'world_frame',
    'camera_frame',
    'tf_mode',
    'odom_frame',
    'base_frame',
    'map_frame',
    'tf_timeout',
    'points.decimation',
    'path.max_length',
    'odometry.step_error',
    'map.period',
    'diagnostics_period',
    *(f'publish_{output}' for output in params.OUTPUTS),
)
FLAGS = tuple(spec for spec in params.PARAMETERS if spec.name not in NODE_ONLY)


def _parameter_type(spec: params.ParameterSpec) -> Callable[[str], Any]:
    """Parse a flag's text into the parameter's type (booleans as the ROS CLI writes them)."""
    if isinstance(spec.default, bool):
        return _boolean
    return type(spec.default)


def _boolean(text: str) -> bool:
    if text.lower() not in ('true', 'false'):
        raise argparse.ArgumentTypeError(f'expected true or false, got {text!r}')
    return text.lower() == 'true'


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
    parser.add_argument('--max-frames', type=int)
    parser.add_argument(
        '--max-time-diff',
        type=float,
        default=0.01,
        help='seconds within which a frame matches a GT pose or depth image',
    )
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    parser.add_argument(
        '--baselines',
        action='store_true',
        help='also score, on the same frames, the mean depth image, a constant depth, a static '
        'camera and random weights (evaluation.baselines)',
    )
    node = parser.add_argument_group(
        'node parameters',
        'As the node takes them (config/stream.yaml); flags override --params-file, which '
        "overrides the defaults, which are the node's.",
    )
    node.add_argument(
        '--params-file', type=Path, help='a ROS 2 params file for the node (vggt_stream)'
    )
    for spec in FLAGS:
        flags = dict.fromkeys([f'--{spec.name}', f'--{spec.name.replace("_", "-")}'])
        node.add_argument(
            *flags,
            dest=spec.name,
            type=_parameter_type(spec),
            metavar=type(spec.default).__name__.upper(),
            help=f'{spec.description} (default: {spec.default!r})',
        )
    return parser.parse_args(argv)


def parameter_values(args: argparse.Namespace) -> dict[str, Any]:
    """The node parameters to replay with: defaults, then --params-file, then flags; checked
    by the node's own rules."""
    values = dict(params.DEFAULTS)
    if args.params_file is not None:
        values.update(config_files.read_params_file(args.params_file))
    values.update(
        {
            spec.name: getattr(args, spec.name)
            for spec in FLAGS
            if getattr(args, spec.name) is not None
        }
    )
    reason = params.validate(values) or params.validate_combination(values)
    if reason or (reason := _not_replayable(values, args)):
        raise ValueError(reason)
    return params.coerce(values)


def _not_replayable(values: dict[str, Any], args: argparse.Namespace) -> str | None:
    """Why a bag replay cannot give these parameters what the node would have, if it cannot."""
    if values['scale_source'] == 'odometry':
        return "scale_source odometry needs the robot's TF, which vggt-eval does not replay"
    if values['scale_source'] == 'depth' and not args.depth_topic:
        return 'scale_source depth needs --depth-topic, the metric depth it reads'
    return None


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
    """Every metric the available ground truth allows, and what became of the frames."""
    scored = metrics.latency_metrics(result.latencies, result.wall_seconds)
    scored['frames'] = len(result.trajectory)
    scored.update({f'frames {name}': count for name, count in sorted(result.counts.items())})
    if truth is not None:
        try:
            scored.update(metrics.trajectory_metrics(result.trajectory, truth, max_diff))
        except ValueError as error:  # the depth and latency are still worth a report
            print(f'WARNING: poses are not scored: {error}', file=sys.stderr)
    if result.depth.seen:
        scored.update(result.depth.result())
    return scored


def replay_bag(
    args: argparse.Namespace,
    values: dict[str, Any],
    reconstructor: Reconstructor,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> tuple[Replay, ground_truth.Trajectory | None]:
    """The bag through the node's pipeline: what it said, and the GT trajectory if any."""
    pipeline = StreamPipeline(reconstructor, values)
    with open_bag(args.bag) as reader:
        truth = load_ground_truth(args, reader)
        result = replay(
            pipeline,
            values,
            reader,
            args.image_topic,
            args.depth_topic,
            args.max_frames,
            args.max_time_diff,
            progress=not args.quiet,
            on_outcome=on_outcome,
        )
    return result, truth


def run(
    args: argparse.Namespace,
    values: dict[str, Any],
    reconstructor: Reconstructor,
    model: str | None,
) -> Path:
    """Replay the bag through the node's pipeline, score it and write the report (`model` says
    what ran; None is random weights); its path."""
    if note := camera_distortion(args):  # before the replay, which can take long
        print(f'WARNING: {note}', file=sys.stderr)
    result, truth = replay_bag(args, values, reconstructor)
    if not len(result.trajectory):
        raise ValueError(
            f'no frame of {args.image_topic} could be processed: {dict(result.counts)}'
        )
    if args.depth_topic and not result.depth.seen:
        print(
            f'WARNING: no {args.depth_topic} image within --max-time-diff {args.max_time_diff} s'
            ' of any frame: depth is not scored',
            file=sys.stderr,
        )
    scored = score(result, truth, args.max_time_diff)
    if args.baselines:
        scored.update(baseline_metrics(args, values, result, scored))
    return write_report(result, scored, model, args.out)


def camera_distortion(args: argparse.Namespace) -> str | None:
    """What the bag's CameraInfo beside the image topic says of distortion, as the node would."""
    topic = config_files.camera_info_sibling(args.image_topic)
    with open_bag(args.bag) as reader:
        info = first_message(reader, topic, 'sensor_msgs/msg/CameraInfo')
    if info is None:
        return None
    coefficients = info.D if hasattr(info, 'D') else info.d  # ROS 1 spells it in upper case
    return distortion_note(info.distortion_model, list(coefficients))


def baseline_metrics(
    args: argparse.Namespace, values: dict[str, Any], result: Replay, scored: dict
) -> dict[str, float]:
    """The baselines' scores on the frames `result` was scored on (keys `baseline_...`)."""
    out = {}
    if 'gt_positions' in scored:
        out['baseline_static_camera_ate'] = baselines.static_camera_ate(scored['gt_positions'])
    if result.depth_stamps:
        with open_bag(args.bag) as reader:
            out |= baselines.depth_baselines(
                reader, args.depth_topic, result.depth_stamps, values['image_width']
            )
    random, truth = replay_bag(args, values, baselines.random_weights_reconstructor(values))
    random_scored = score(random, truth, args.max_time_diff)
    out |= {
        f'baseline_random_weights_{name}': random_scored[name]
        for name in ('ate_rmse', 'depth_abs_rel', 'depth_delta_1.25')
        if name in random_scored
    }
    return out


def main(argv: list[str] | None = None, reconstructor: Reconstructor | None = None) -> int:
    """Entry point; `reconstructor` replaces the one the options describe (tests, stand-ins)."""
    args = parse_args(argv)
    try:
        values = parameter_values(args)
        if reconstructor is None and (
            reason := missing_checkpoint(values['checkpoint'], values['preset'])
        ):
            raise ValueError(reason)
        model = (
            weights_description(values['checkpoint'], values['preset'])
            if reconstructor is None
            else 'a reconstructor given by the caller'
        )
        if model is None:
            print(f'WARNING: {RANDOM_WEIGHTS_BANNER}', file=sys.stderr)
        reconstructor = reconstructor or reconstructor_from_parameters(values)
        path = run(args, values, reconstructor, model)
    except (BagError, ValueError) as exc:  # CheckpointError is a ValueError
        print(f'vggt-eval: error: {exc}', file=sys.stderr)
        return EXIT_USAGE
    print(f'report: {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
