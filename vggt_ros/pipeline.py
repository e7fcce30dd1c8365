"""The stream pipeline: one decoded camera frame in, what to publish out (no ROS).

The node and the bag evaluator both run frames through a StreamPipeline, so the evaluator scores
exactly what the robot runs: the same size checks, stream-continuity policy (resets, repeated and
out-of-order stamps), merging switch, scale and world axes, and voxel map. The node only turns
messages into arrays and outcomes into messages; `history_cleared` tells it when the path it
publishes starts again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from vggt_ros import param_options
from vggt_ros.anchoring import Anchoring, Similarity, fit_similarity
from vggt_ros.continuity import RESET_REQUESTED, StreamContinuity
from vggt_ros.frame_size import FrameSizeError, model_size
from vggt_ros.mapping import VoxelMap
from vggt_ros.metric_scale import ScaleEstimate, new_estimator
from vggt_ros.model import default_device
from vggt_ros.outputs import FrameOutputs, OutputOptions
from vggt_ros.reconstructor import Reconstructor, check_rgb
from vggt_ros.registration import to_model_grid
from vggt_ros.stream_types import FrameResult


@dataclass(frozen=True)
class MetricSample:
    """What a frame brings for the metric scale (scale_source), paired with it by stamp.

    depth: a metric z-depth image of this camera, registered to the colour image (same view and
        aspect; any resolution), in metres, NaN or 0 where unknown.
    odometry_camera: odom_frame -> camera from an external odometry at the image stamp (metres).
    """

    depth: np.ndarray | None = None
    odometry_camera: np.ndarray | None = None


@dataclass(frozen=True)
class Outcome:
    """What became of one frame.

    status: 'processed', 'skipped' (on purpose) or 'failed' (it could not be used).
    kind: why it was skipped or failed ('repeated stamp', 'image too small', 'model', ...).
    error: the failure's message. reset: why the world restarted before this frame, if it did.
    warning: something to tell the user once. history_cleared: the path and map were cleared
        (on ~/reset and on new units; an automatic reset keeps them, the world continuing).
    reanchored: a new session was anchored at a recent frame and aligned before this frame.
    scale: the metric scale estimate in force (None with scale_source fixed).
    frame: the outputs of a processed frame, stamped `stamp_ns`.
    """

    status: str
    stamp_ns: int = 0
    kind: str = ''
    error: str = ''
    reset: str | None = None
    warning: str | None = None
    history_cleared: bool = False
    reanchored: bool = False
    scale: ScaleEstimate | None = None
    frame: FrameOutputs | None = None


class StreamPipeline:
    """Frames through the Reconstructor under the stream policy, with a voxel map.

    `values` are the node's parameters (vggt_ros.params); those that change at runtime are passed
    to every `process` call, so a parameter set takes effect on the next frame.
    """

    def __init__(self, reconstructor: Reconstructor, values: Mapping[str, Any]) -> None:
        self.reconstructor = reconstructor
        self.continuity = StreamContinuity()
        self.map = VoxelMap(values['map.voxel_size'], values['map.max_points'])
        self._scale = values['scale']  # the units of the path and the map so far
        self._merging = param_options.merging_options(values)
        reconstructor.set_merging(self._merging)
        self.anchoring = Anchoring(values['anchor.overlap'])
        self._source = values['scale_source']
        self._estimator = new_estimator(self._source)
        # The session's world in the published one (optical axes): the first session's own until
        # an automatic reset anchors a new session at the last published camera pose, or a
        # re-anchoring aligns one to the frames it shares with the old. With a metric scale
        # source its scale is the estimate of metres per session unit, so the world is metric.
        self._world_from_session = Similarity(self._first_scale(values))
        self._last_pose = np.eye(4)

    def request_reset(self) -> None:
        """Start a new world before the next frame (any thread)."""
        self.continuity.request_reset()

    def process(
        self,
        rgb: np.ndarray,
        stamp_ns: int,
        received_ns: int,
        values: Mapping[str, Any],
        *,
        update_map: bool = True,
        metric: MetricSample | None = None,
    ) -> Outcome:
        """One decoded HxWx3 uint8 frame through the policy and the model; `metric`: what the
        frame brings for scale_source depth or odometry."""
        try:
            check_rgb(rgb)  # before the policy: an unusable array never resets the world
            model_size(*rgb.shape[:2], self.reconstructor.image_width)
        except FrameSizeError as error:
            return Outcome('failed', kind=error.kind, error=str(error))
        except (TypeError, ValueError) as error:
            return Outcome('failed', kind='unusable image', error=str(error))
        size = rgb.shape[:2]
        admission = self.continuity.admit(
            size, stamp_ns, received_ns, values['time_jump_tolerance']
        )
        stamp_ns, warning = admission.stamp_ns, admission.warning
        if admission.skip:
            return Outcome('skipped', stamp_ns, kind=admission.skip, warning=warning)
        cleared = admission.reset == RESET_REQUESTED
        reset = admission.reset
        if reset:
            self._new_world(values, continuous=not cleared)
        self._sync_merging(values)
        reanchored, reanchor_s = False, None
        try:
            start = time.perf_counter()
            image = self.reconstructor.preprocess(rgb)
            preprocess_s = time.perf_counter() - start
            if not reset and self.anchoring.due(values):
                reset, reanchor_s = self._reanchor(values)
                reanchored = reset is None
            result = self.reconstructor.step_image(image, stamp_ns * 1e-9)
            result.timings['preprocess'] = preprocess_s
        except Exception as error:  # noqa: BLE001 - the step is undone; the stream goes on
            return Outcome(
                'failed',
                stamp_ns,
                kind='model',
                error=f'the model failed on a frame, skipped it: {error!r}',
                reset=reset,
                warning=warning,
                history_cleared=cleared,
            )
        if reanchor_s is not None:  # the warm-start is part of this frame's latency
            result.timings['reanchor'] = reanchor_s
        self.continuity.processed(size, stamp_ns)
        scale = self._measure_scale(result, metric, values)
        result = self._world_from_session.result(result)
        self._last_pose = result.world_from_camera
        self.anchoring.record(image, result)
        # New units (a fixed scale changed): what was accumulated in the old ones goes. With a
        # metric source `scale` is only the first guess: changing it changes nothing now.
        rescaled = values['scale'] != self._scale and self._source == 'fixed'
        self._scale = values['scale']
        if rescaled:
            self.map.clear()
        frame = FrameOutputs(result, output_options(values))
        if update_map:
            self.map.insert(*frame.world_points())
        return Outcome(
            'processed',
            stamp_ns,
            reset=reset,
            warning=warning,
            history_cleared=cleared or rescaled,
            reanchored=reanchored,
            scale=scale,
            frame=frame,
        )

    def _first_scale(self, values: Mapping[str, Any]) -> float:
        """The first session's units in the published world: its own (the outputs then multiply
        by `scale`), or, with a metric source, `scale` as the guess until an estimate exists."""
        return 1.0 if self._estimator is None else values['scale']

    def _new_world(self, values: Mapping[str, Any], continuous: bool) -> None:
        """A new session, without evidence for its scale. `continuous` (automatic resets: the
        stream broke, the robot did not move) anchors it at the last published pose, in the units
        so far, and keeps the path and map; otherwise (the user's ~/reset) the world restarts at
        the origin."""
        self.reconstructor.reset()
        self.continuity.started_new_world(answered_request=not continuous)
        self.anchoring.forget()
        self._estimator = new_estimator(self._source)
        if continuous:
            self._world_from_session = Similarity.at_pose(
                self._last_pose, self._world_from_session.scale
            )
        else:
            self._world_from_session = Similarity(self._first_scale(values))
            self._last_pose = np.eye(4)
            self.map.clear()

    def _measure_scale(
        self, result: FrameResult, metric: MetricSample | None, values: Mapping[str, Any]
    ) -> ScaleEstimate | None:
        """Add the frame's evidence (in session units) and put the estimate into the world."""
        if self._estimator is None:
            return None
        if metric is not None and self._source == 'depth' and metric.depth is not None:
            sensor = to_model_grid(metric.depth, result.depth.shape[1])
            if sensor.shape == result.depth.shape:  # else another view: not evidence
                confident = result.confidence >= values['conf_threshold']
                self._estimator.add(sensor, result.depth, confident)
        if metric is not None and self._source == 'odometry' and metric.odometry_camera is not None:
            self._estimator.add(result.world_from_camera[:3, 3], metric.odometry_camera[:3, 3])
        estimate = self._estimator.estimate()
        if estimate.metric:
            self._world_from_session = replace(self._world_from_session, scale=estimate.value)
        return estimate

    def _reanchor(self, values: Mapping[str, Any]) -> tuple[str | None, float]:
        """A new session warm-started with the recent frames and aligned to what they published;
        the scale evidence so far is carried into its units.

        Returns (why the world restarted instead, seconds taken): a warm-start that fails leaves
        an automatic reset, continuous as any other."""
        start = time.perf_counter()
        recent = list(self.anchoring.recent)
        old = self._world_from_session
        try:
            warm = self.reconstructor.restart([f.image for f in recent], [f.stamp for f in recent])
            new = fit_similarity(
                np.stack([r.world_from_camera for r in warm]),
                np.stack([f.pose for f in recent]),
                [r.depth for r in warm],
                [f.depth for f in recent],
            )
        except Exception as error:  # noqa: BLE001 - the world goes on from the last pose
            self._new_world(values, continuous=True)
            return f're-anchoring failed: {error!r}', time.perf_counter() - start
        self._world_from_session = new
        if self._estimator is not None:
            to_new = new.inverse()
            self._estimator = self._estimator.rebased(
                new.scale / old.scale, lambda points: to_new.apply(old.apply(points))
            )
        self.anchoring.reanchored()
        return None, time.perf_counter() - start

    def _sync_merging(self, values: Mapping[str, Any]) -> None:
        """Hand a changed merging.* setting to the model, between frames (no reset needed)."""
        wanted = param_options.merging_options(values)
        if wanted != self._merging:
            self.reconstructor.set_merging(wanted)
            self._merging = wanted

    @property
    def merging(self) -> bool:
        return self._merging is not None


def reconstructor_from_parameters(values: Mapping[str, Any]) -> Reconstructor:
    """The model and session the parameters describe: checkpoint, preset, device ('auto': CUDA
    when available), image width, tracking scale and session options. Raises CheckpointError (a
    ValueError)."""
    device = default_device() if values['device'] == 'auto' else values['device']
    return Reconstructor.from_checkpoint(
        values['checkpoint'] or None,
        values['preset'],
        device,
        **param_options.reconstructor_options(values),
    )


def output_options(values: Mapping[str, Any]) -> OutputOptions:
    """How the parameters shape a frame's published outputs (with a metric scale source the
    world is already in metres: `scale` is only the first guess)."""
    return OutputOptions(
        conf_threshold=values['conf_threshold'],
        scale=values['scale'] if values['scale_source'] == 'fixed' else 1.0,
        world_axes=values['world_axes'],
        decimation=values['points.decimation'],
    )
