"""Within one session: the camera head's poses against poses solved from the model's own depth.

Each scene is cut into 8-frame clips (stride 1, as a deployed session sees its frames). Every
later frame's pose relative to the clip's first is read from the camera head, and solved by PnP
(OpenCV, RANSAC) from the first frame's predicted depth and patch correspondences to it: the
ground-truth ones, the same with Gaussian noise of `--noise` pixels, and, for a training run
with `--correspondence`, those of its flow readout (the flow head, for runs that had one), raw
and refined in the images (pose_from_matches.refine_matches). If
the ground-truth correspondences give poses far better than the head's, the depth is good enough
and what the poses lack is precise matching. Errors: mean rotation error, and translation error
after one least-squares scale per clip, relative to the true translation. Results:
docs/training-experiments.md.

    python tools/session_poses.py out/train/fine out/heldout/scenes/* --noise 0.5 1 2
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from scipy.spatial.transform import Rotation

from vggt_ros.model import StreamVGGT
from vggt_ros.model.geometry import pose_encoding_to_extri_intri
from vggt_ros.pose_from_matches import (
    FirstFrame,
    grey,
    matched_points,
    refined_points,
    solve_pnp,
)
from vggt_ros.reconstructor import to_rgb8
from vggt_ros.stream_types import FLOW_HEAD
from vggt_ros.training.data import PATCH_SIZE, BagTopics, Clip, make_clip, read_frames
from vggt_ros.training.flow_head import load_without_flow_head
from vggt_ros.training.train import READOUT_PREFIX, STATE_FILE, WEIGHTS_FILE

SESSION = 8  # frames between re-anchorings in config/small.yaml
READOUT = READOUT_PREFIX + 'flow_readout.'


def clip_errors(estimates: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Mean rotation error [deg] of camera_from_first poses [N, 4, 4], and their translations'
    error after one least-squares scale, relative to the true translations' norm."""
    relative = estimates[:, :3, :3] @ truth[:, :3, :3].transpose(0, 2, 1)
    rotation = float(np.degrees(Rotation.from_matrix(relative).magnitude()).mean())
    estimated, true = estimates[:, :3, 3], truth[:, :3, 3]
    scale = (estimated * true).sum() / max((estimated * estimated).sum(), 1e-12)
    return rotation, float(np.linalg.norm(scale * estimated - true) / np.linalg.norm(true))


def load_run(run: Path) -> tuple[StreamVGGT, bool]:
    """A vggt-train output folder's model, with its flow readout as the flow head where the run
    trained one (whether it did)."""
    model = load_without_flow_head(run / WEIGHTS_FILE, 'small')  # runs from before the head
    readout = {
        key.removeprefix(READOUT): value
        for key, value in load_file(run / STATE_FILE).items()
        if key.startswith(READOUT)
    }
    if readout:
        model.flow_head.proj.load_state_dict(readout)
    return model, bool(readout)


def scene_errors(
    model: StreamVGGT,
    readout: bool,
    bag: Path,
    noise: list[float],
    rng: np.random.Generator,
) -> dict[str, tuple[float, float]]:
    """Mean (rotation, translation) errors of each pose source over the scene's clips."""
    frames = read_frames(bag, 112, BagTopics())
    errors: dict[str, list[tuple[float, float]]] = {}
    for start in range(0, len(frames) - SESSION + 1, SESSION):
        clip = make_clip(frames, range(start, start + SESSION))
        for name, value in clip_errors_by_source(model, readout, clip, frames.K, noise, rng):
            errors.setdefault(name, []).append(value)
    return {name: tuple(np.mean(values, axis=0)) for name, values in errors.items()}


def clip_errors_by_source(
    model: StreamVGGT,
    readout: bool,
    clip: Clip,
    K: np.ndarray,
    noise: list[float],
    rng: np.random.Generator,
) -> Iterator[tuple[str, tuple[float, float]]]:
    """(pose source, its clip_errors) for one clip; a frame PnP finds no pose for keeps the
    head's."""
    out = model.forward_causal(clip.images, 'fp32', ('camera', 'depth', *[FLOW_HEAD] * readout))
    size = clip.images.shape[-2:]
    truth = _homogeneous(pose_encoding_to_extri_intri(clip.pose_enc, size)[0])[1:]
    head = _homogeneous(pose_encoding_to_extri_intri(out['pose_enc'], size)[0])[1:]
    yield 'camera head', clip_errors(head, truth)
    matched = clip.matches.numpy() >= 0
    sources = {'ground-truth matches': (clip.flow.numpy(), matched)}
    for pixels in noise:
        noisy = clip.flow.numpy() + rng.normal(0, pixels / PATCH_SIZE, clip.flow.shape)
        sources[f'ground-truth matches ± {pixels:g} px'] = (noisy, matched)
    if readout:
        sources['flow readout'] = (out[FLOW_HEAD].numpy(), np.ones_like(matched))
    first_depth = out['depth'][0].numpy()
    lifted = {
        name: [
            matched_points(f, first_depth, K, PATCH_SIZE, u)
            for f, u in zip(flow, usable, strict=True)
        ]
        for name, (flow, usable) in sources.items()
    }
    if readout:
        greys = [grey(to_rgb8(image)) for image in clip.images]
        lifted['flow readout, refined'] = [
            refined_points(flow, image, FirstFrame(greys[0], first_depth), K, PATCH_SIZE)
            for flow, image in zip(out[FLOW_HEAD].numpy(), greys, strict=True)
        ]
    for name, matches in lifted.items():
        solved = [solve_pnp(*pixels_points, K) for pixels_points in matches[1:]]
        poses = [h if s is None else s for s, h in zip(solved, head, strict=True)]
        yield f'PnP, {name}', clip_errors(np.stack(poses), truth)


def _homogeneous(extrinsics: torch.Tensor) -> np.ndarray:
    poses = np.tile(np.eye(4), (len(extrinsics), 1, 1))
    poses[:, :3] = extrinsics.numpy()
    return poses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('run', type=Path, help='a vggt-train output folder')
    parser.add_argument('bags', nargs='+', type=Path, help='synthetic scenes (vggt-synth bags)')
    parser.add_argument('--noise', type=float, nargs='*', default=[], help='pixels (σ)')
    args = parser.parse_args()
    model, readout = load_run(args.run)
    rng = np.random.default_rng(0)
    print('| scene | pose source | rotation error [deg] | translation error (relative) |')
    print('|---|---|---|---|')
    for bag in args.bags:
        for name, (rotation, translation) in scene_errors(
            model, readout, bag, args.noise, rng
        ).items():
            print(f'| {bag.name} | {name} | {rotation:.2f} | {translation:.2f} |', flush=True)


if __name__ == '__main__':
    main()
