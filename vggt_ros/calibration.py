"""What the camera's own calibration (its CameraInfo) says about the frames the model sees (no ROS).

VGGT models a pinhole camera and predicts its focal length from the image. A camera driver's
`image_raw` is usually distorted (the CameraInfo's coefficients say how), which bends the
geometry the model reads: such input should be rectified first (image_proc's `image_rect`).
Where the calibration is known, the model's predicted focal length can be checked against it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def distortion_note(model: str, coefficients: Sequence[float]) -> str | None:
    """Why the image is not the pinhole image the model expects, or None where it is."""
    if not any(coefficients):
        return None
    shown = ', '.join(f'{c:.3g}' for c in coefficients)
    return (
        f'camera_info says the image is distorted ({model or "unknown model"}: {shown}); the '
        'model assumes a pinhole camera, so depth and poses bend toward the edges: feed it the '
        "rectified image (image_proc's image_rect)"
    )


def calibrated_focal(K: np.ndarray, input_width: int, model_width: int) -> float | None:
    """The calibrated horizontal focal length in the model's pixels (the frame resized to
    `model_width` wide), or None for an uncalibrated camera (K[0] == 0, as CameraInfo has it)."""
    fx = float(K[0, 0])
    if not np.isfinite(fx) or fx <= 0 or input_width <= 0:
        return None
    return fx * model_width / input_width


def focal_check(predicted: float, calibrated: float | None) -> str:
    """The diagnostics' line on the model's focal length against the calibration."""
    if calibrated is None:
        return f'{predicted:.1f} px predicted (no calibration)'
    error = predicted / calibrated - 1
    return f'{predicted:.1f} px predicted, {calibrated:.1f} px calibrated ({error:+.0%})'
