"""Lucas-Kanade between two grey frames at the tracked size (tracking_scale times the model's),
and the pinhole rays it starts from (no ROS): what refined matches, tracked grids and followed
tracks all run on."""

from __future__ import annotations

import cv2
import numpy as np

REFINE_WINDOW = 9  # Lucas-Kanade window [px] in the tracked frame (at 224 px: 7 level, 15 worse)
REFINE_LEVELS = 1  # pyramid levels above the image: every guess is a pixel or two off
REFINE_ROUND_TRIP = 0.5  # [px] a tracked point must track back to where it started this closely
REFINE_REACH = 3 / 7  # [patches] and stay this close to its guess (6 px at 14 px)


def lucas_kanade(
    image: np.ndarray,
    other: np.ndarray,
    start: np.ndarray,
    guess: np.ndarray,
    patch_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Points `start` [N, 2] of grey `image` tracked into grey `other` by pyramidal
    Lucas-Kanade (OpenCV), each started at its `guess` [N, 2]: [N, 2] where they landed and
    the [N] mask of those kept.

    A point is kept where the tracker converges, tracks back to where it started within
    REFINE_ROUND_TRIP and stays within REFINE_REACH of its guess: textureless and occluded
    points are dropped.
    """
    if not len(start):  # OpenCV refuses empty point arrays
        return np.empty((0, 2)), np.zeros(0, bool)
    start, guess = start.astype(np.float32)[:, None], guess.astype(np.float32)[:, None]
    track = {
        'winSize': (REFINE_WINDOW, REFINE_WINDOW),
        'maxLevel': REFINE_LEVELS,
        'flags': cv2.OPTFLOW_USE_INITIAL_FLOW,
    }
    tracked, found, _ = cv2.calcOpticalFlowPyrLK(image, other, start, guess.copy(), **track)
    back, found_back, _ = cv2.calcOpticalFlowPyrLK(other, image, tracked, start.copy(), **track)
    kept = (found[:, 0] == 1) & (found_back[:, 0] == 1)
    kept &= np.linalg.norm(back - start, axis=-1)[:, 0] < REFINE_ROUND_TRIP
    kept &= np.linalg.norm(tracked - guess, axis=-1)[:, 0] < REFINE_REACH * patch_size
    return tracked[:, 0].astype(np.float64), kept


def rays(pixels: np.ndarray, K: np.ndarray) -> np.ndarray:
    """[N, 3] rays (z = 1) through pixels [N, 2]."""
    return np.column_stack([(pixels - K[:2, 2]) / np.diag(K)[:2], np.ones(len(pixels))])


def project(seen: np.ndarray, K: np.ndarray) -> np.ndarray:
    """[N, 2] pixels of camera-frame points [N, 3] (in front of it): the inverse of rays."""
    return seen[:, :2] / seen[:, 2:] * np.diag(K)[:2] + K[:2, 2]


def turned_pixels(
    pixels: np.ndarray, turn: np.ndarray, K: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Where a camera turned by `turn` (3x3, new camera from old) sees the rays through
    `pixels` [N, 2] of the old one: [N, 2] pixels and the [N] mask of those in front of it. A
    frame's parallax is a pixel or so, so this is where Lucas-Kanade starts."""
    seen = rays(pixels, K) @ turn.T
    front = seen[:, 2] > 0
    seen[~front, 2] = 1.0  # behind the camera: anywhere, masked out
    return project(seen, K), front
