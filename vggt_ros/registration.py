"""Between the input image's pixels and the model's: the crop and resize undone (numpy only).

The model sees the camera image resized to `image_width` wide (the height rounded to a multiple
of the patch side) and centre-cropped to at most `image_width` rows (`Reconstructor.preprocess`).
`depth_image_proc/point_cloud_xyzrgb` needs depth at the colour image's resolution, read with
the colour camera's CameraInfo, so each input pixel takes the depth of the model pixel its centre
falls in. Nearest neighbour, because a depth blended across an object boundary is a point
floating in mid-air; rows the crop cut off are NaN (unknown), never extrapolated. The other way,
a metric depth image of the camera is sampled at the model's pixel centres (`to_model_grid`) to
be compared with the prediction.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from vggt_ros.frame_size import resized_height


@lru_cache(maxsize=8)
def _index_maps(
    input_size: tuple[int, int], image_width: int
) -> tuple[tuple[int, int], slice, np.ndarray, np.ndarray]:
    """(model size, covered input rows, model row and column of each input row and column).

    Pixel centres as F.interpolate(align_corners=False) places them: input centre y + 0.5 lands
    at (y + 0.5) * resized / height in the resized image, `top` rows above the crop. Integer
    arithmetic keeps the floor exact where a centre falls on a model pixel border (2x upscales);
    the columns and the rows inside the crop are in range by construction, so nothing is clipped.
    Rows the crop cut map to the model height: the all-NaN row that register_depth appends.
    """
    height, width = input_size
    resized = resized_height(height, width, image_width)
    top = max(resized - image_width, 0) // 2
    model_height = min(resized, image_width)
    rows = (2 * np.arange(height) + 1) * resized // (2 * height) - top
    cols = (2 * np.arange(width) + 1) * image_width // (2 * width)
    # rows never decrease, so the rows inside the crop are one contiguous band
    band = slice(int(np.searchsorted(rows, 0)), int(np.searchsorted(rows, model_height)))
    rows[: band.start] = rows[band.stop :] = model_height
    rows.flags.writeable = cols.flags.writeable = False  # shared by every call through the cache
    return (model_height, image_width), band, rows, cols


def covered_rows(input_size: tuple[int, int], image_width: int) -> slice:
    """Input rows the model saw (inside the centre crop); the others are NaN when registered."""
    return _index_maps(tuple(input_size), image_width)[1]


def register_depth(depth: np.ndarray, input_size: tuple[int, int], image_width: int) -> np.ndarray:
    """Model-resolution z-depth (NaN where invalid) at the input's (height, width), as float32.

    The values are copied, not rescaled: z-depth is the distance along the optical axis, a
    property of the 3-D point and not of the intrinsics, so the input image's own CameraInfo
    unprojects each copied value along the camera's real ray through that input pixel. Input rows
    outside the crop are NaN. The index maps depend only on the sizes and are cached; a row
    gather then a column gather is about 3x faster than one broadcast 2-D gather.
    """
    model_shape, _, rows, cols = _index_maps(tuple(input_size), image_width)
    if depth.shape != model_shape:
        raise ValueError(
            f'depth is {depth.shape}, but a {tuple(input_size)} input at image_width '
            f'{image_width} gives the model size {model_shape}'
        )
    padded = np.empty((model_shape[0] + 1, model_shape[1]), dtype=np.float32)
    padded[:-1] = depth
    padded[-1] = np.nan
    return padded[rows][:, cols]


@lru_cache(maxsize=8)
def _sample_maps(input_size: tuple[int, int], image_width: int) -> tuple[np.ndarray, np.ndarray]:
    """The input row and column each model pixel samples.

    Model pixel (u, v) sees the ray of input pixel (u W0 / W, (v + top) H0 / Hr) in the model's
    convention (integer pixel centres, principal point at the image centre), rounded to the
    nearest input pixel.
    """
    height, width = input_size
    resized = resized_height(height, width, image_width)
    top = max(resized - image_width, 0) // 2
    model_height = min(resized, image_width)
    rows = np.round((np.arange(model_height) + top) * height / resized).astype(int)
    cols = np.round(np.arange(image_width) * width / image_width).astype(int)
    rows, cols = rows.clip(0, height - 1), cols.clip(0, width - 1)
    rows.flags.writeable = cols.flags.writeable = False
    return rows, cols


def to_model_grid(image: np.ndarray, image_width: int) -> np.ndarray:
    """An input-resolution image (ground-truth or sensor depth) at the model's pixels, so each
    predicted depth is compared with the depth along the same ray; nearest, not interpolated, so
    depth edges do not invent surfaces."""
    rows, cols = _sample_maps(image.shape[:2], image_width)
    return image[rows][:, cols]
