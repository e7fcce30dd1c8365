"""The size the model sees a camera image at, and which image sizes it can use (no torch, no ROS).

The reference preprocessing ("crop" mode) scales the width to `image_width`, rounds the height to
a multiple of the patch side and centre-crops it to at most the width. The node checks a frame's
size with these functions before the frame touches any stream state, so a frame the model cannot
use is skipped instead of resetting the world.
"""

from __future__ import annotations

PATCH_SIZE = 14  # StreamVGGTConfig.patch_size: image sides are multiples of it
MIN_PATCHES = 2  # per side of the model's image: fewer cannot carry geometry
MAX_TRACKING_SCALE = 4  # poses from matches track at most this many times the model's size


class FrameSizeError(ValueError):
    """A frame whose size the model cannot use (the node counts these as 'image too small')."""

    kind = 'image too small'


def check_image_width(image_width: int) -> None:
    """Raise ValueError unless image_width is a multiple of the patch side, two patches or more."""
    if image_width < MIN_PATCHES * PATCH_SIZE or image_width % PATCH_SIZE:
        raise ValueError(
            f'image_width must be a multiple of {PATCH_SIZE} of at least '
            f'{MIN_PATCHES * PATCH_SIZE}, got {image_width}'
        )


def check_tracking_scale(scale: int) -> None:
    """Raise ValueError unless `scale` is an integer from 1 to MAX_TRACKING_SCALE."""
    if type(scale) is not int or not 1 <= scale <= MAX_TRACKING_SCALE:
        raise ValueError(
            f'tracking_scale must be an integer from 1 to {MAX_TRACKING_SCALE}, got {scale!r}'
        )


def resized_height(height: int, width: int, image_width: int) -> int:
    """Height of a height x width image resized to image_width, before the centre crop."""
    check_image_width(image_width)
    if height <= 0 or width <= 0:
        raise FrameSizeError(f'image size must be positive, got {width}x{height}')
    # Python's round (half to even) as in the reference preprocessing, so sizes match it exactly.
    return round(height * image_width / width / PATCH_SIZE) * PATCH_SIZE


def model_size(height: int, width: int, image_width: int = 518) -> tuple[int, int]:
    """(H, W) the model sees for a height x width input, or FrameSizeError if it cannot see it.

    The source must hold at least one patch of real pixels per side and the model's image at
    least MIN_PATCHES patches per side: a 1x1 image upscaled to 518x518, or a 2000x4 strip,
    carries no geometry.
    """
    resized = resized_height(height, width, image_width)
    size = min(resized, image_width), image_width
    if min(height, width) < PATCH_SIZE or min(size) < MIN_PATCHES * PATCH_SIZE:
        raise FrameSizeError(
            f'a {width}x{height} image is too small for the model: it needs at least '
            f'{PATCH_SIZE} px per side, and {MIN_PATCHES * PATCH_SIZE} px per side after '
            f'resizing to width {image_width} (got {size[1]}x{size[0]})'
        )
    return size
