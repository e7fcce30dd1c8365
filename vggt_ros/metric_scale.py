"""Metric scale: metres per model unit from a depth sensor or an external odometry (no ROS).

VGGT's scale is normalised per session, so every session (a reset, a re-anchoring) has units of
its own. An estimator collects, frame by frame, evidence in the current session's units and says
how many metres one of them is:
- depth: a metric depth image of the same camera; per frame the median ratio sensor / predicted
  over valid, confident pixels, and the estimate the median of the last SCALE_WINDOW frames.
- odometry: where an external odometry (wheels, an IMU) puts the camera against where the model
  puts it; the similarity (Umeyama) scale of the two trajectories over the last SCALE_WINDOW
  frames, once they span at least MIN_MOTION_M and the similarity explains them
  (MAX_ODOMETRY_SPREAD).
A re-anchoring carries the evidence into the new session's units, so the estimate goes on; after a
reset there is none until new frames bring it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

SCALE_SOURCES = ('fixed', 'depth', 'odometry')
SCALE_WINDOW = 30  # frames of evidence: long enough to average noise, short enough to follow
MIN_DEPTH_FRAMES = 1  # a frame holds thousands of ratios: its median is robust already
MIN_MOTION_M = 0.2  # RMS distance of the odometry's camera centres from their centroid
# Residual over motion beyond which the two paths are not one path at two scales: a jump in the
# odometry, or wheels spinning under a still camera (then about 1). Taken as no estimate, so the
# last one stays.
MAX_ODOMETRY_SPREAD = 0.5


@dataclass(frozen=True)
class ScaleEstimate:
    """Metres per session unit (None until there is evidence), its relative spread and source."""

    source: str
    value: float | None = None
    spread: float = float('nan')  # median absolute deviation / value (depth), residual (odometry)
    frames: int = 0

    @property
    def metric(self) -> bool:
        return self.value is not None


class DepthScale:
    """Metres per session unit from pairs of sensor and predicted depth of the same frames."""

    source = 'depth'

    def __init__(self, ratios: Iterable[float] = ()) -> None:
        self._ratios: deque[float] = deque(ratios, maxlen=SCALE_WINDOW)

    def add(self, sensor: np.ndarray, predicted: np.ndarray, confident: np.ndarray) -> None:
        """One frame: HxW metric depth (NaN or 0: none), HxW predicted depth, HxW bool mask."""
        valid = confident & np.isfinite(sensor) & (sensor > 0) & np.isfinite(predicted)
        valid &= predicted > 0
        # In float64: a float32 ratio of extreme depths overflows to inf or underflows to 0.
        ratios = sensor[valid].astype(np.float64) / predicted[valid].astype(np.float64)
        ratios = ratios[np.isfinite(ratios) & (ratios > 0)]
        if len(ratios):
            self._ratios.append(float(np.median(ratios)))

    def estimate(self) -> ScaleEstimate:
        if len(self._ratios) < MIN_DEPTH_FRAMES:
            return ScaleEstimate(self.source, frames=len(self._ratios))
        ratios = np.asarray(self._ratios)
        value = float(np.median(ratios))
        spread = float(np.median(np.abs(ratios - value))) / value
        return ScaleEstimate(self.source, value, spread, len(ratios))

    def rebased(self, factor: float, _: Callable[[np.ndarray], np.ndarray]) -> DepthScale:
        """The evidence in a new session's units, `factor` old units each."""
        return DepthScale(ratio * factor for ratio in self._ratios)


class OdometryScale:
    """Metres per session unit from camera centres: the model's against the odometry's."""

    source = 'odometry'

    def __init__(self, pairs: Iterable[tuple[np.ndarray, np.ndarray]] = ()) -> None:
        self._pairs: deque[tuple[np.ndarray, np.ndarray]] = deque(pairs, maxlen=SCALE_WINDOW)

    def add(self, model_centre: np.ndarray, odometry_centre: np.ndarray) -> None:
        """One frame: the camera centre in session units and in metres (the odometry's frame);
        a non-finite one is no evidence."""
        pair = (np.asarray(model_centre, float), np.asarray(odometry_centre, float))
        if all(np.isfinite(centre).all() for centre in pair):
            self._pairs.append(pair)

    def estimate(self) -> ScaleEstimate:
        frames = len(self._pairs)
        if frames < 3:
            return ScaleEstimate(self.source, frames=frames)
        model = np.stack([m for m, _ in self._pairs])
        metres = np.stack([o for _, o in self._pairs])
        model, metres = model - model.mean(0), metres - metres.mean(0)
        motion = np.sqrt((metres**2).sum(1).mean())
        if motion < MIN_MOTION_M or not (model**2).sum():
            return ScaleEstimate(self.source, frames=frames)
        value, residual = umeyama_scale(model, metres)
        spread = residual / motion
        if not (np.isfinite(value) and value > 0 and spread <= MAX_ODOMETRY_SPREAD):
            return ScaleEstimate(self.source, frames=frames)  # no similarity explains the two
        return ScaleEstimate(self.source, value, spread, frames)

    def rebased(self, _: float, to_new: Callable[[np.ndarray], np.ndarray]) -> OdometryScale:
        """The evidence in a new session's coordinates (`to_new` maps old-session points)."""
        return OdometryScale((to_new(model[None])[0], metres) for model, metres in self._pairs)


def umeyama_scale(source: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """(scale, RMS residual) of the similarity best taking centred Nx3 source onto target."""
    u, singular, vt = np.linalg.svd(target.T @ source / len(source))
    sign = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(singular) @ sign) / (source**2).sum(1).mean())
    residual = target - scale * source @ rotation.T
    return scale, float(np.sqrt((residual**2).sum(1).mean()))


Estimator = DepthScale | OdometryScale


def new_estimator(source: str) -> Estimator | None:
    """An empty estimator for `source`; None for 'fixed' (the scale parameter)."""
    return {'depth': DepthScale, 'odometry': OdometryScale}.get(source, lambda: None)()
