"""Camera geometry in VGGT's conventions (pure torch, batched over leading dims).

Conventions (see DESIGN §4): extrinsics are camera-from-world [R | t] with OpenCV camera axes
(x right, y down, z forward); quaternions are XYZW (scalar last); intrinsics put the principal
point at exactly (W/2, H/2); pixel (u, v) sits at integer coordinates (no +0.5 offset); depth is
z-depth. These match the model's training targets, so any deviation biases every output.
"""

from __future__ import annotations

import torch
from torch import Tensor


def quat_to_rotation(quat: Tensor) -> Tensor:
    """XYZW quaternion [..., 4] -> rotation [..., 3, 3].

    The camera head predicts unnormalised quaternions; scaling by 2/|q|^2 turns them into a proper
    rotation without a separate normalisation step (as the reference does).
    """
    x, y, z, w = quat.unbind(-1)
    s = 2.0 / (quat * quat).sum(-1)
    rows = (
        1 - s * (y * y + z * z),
        s * (x * y - z * w),
        s * (x * z + y * w),
        s * (x * y + z * w),
        1 - s * (x * x + z * z),
        s * (y * z - x * w),
        s * (x * z - y * w),
        s * (y * z + x * w),
        1 - s * (x * x + y * y),
    )
    return torch.stack(rows, -1).reshape(quat.shape[:-1] + (3, 3))


def rotation_to_quat(rot: Tensor) -> Tensor:
    """Rotation [..., 3, 3] -> unit XYZW quaternion [..., 4] with non-negative real part.

    Four algebraically equivalent formulas exist; each divides by one quaternion component, so
    the one whose component is largest is chosen per matrix for numerical stability.
    """
    m00, m01, m02 = rot[..., 0, 0], rot[..., 0, 1], rot[..., 0, 2]
    m10, m11, m12 = rot[..., 1, 0], rot[..., 1, 1], rot[..., 1, 2]
    m20, m21, m22 = rot[..., 2, 0], rot[..., 2, 1], rot[..., 2, 2]
    # 4 * component^2 for w, x, y, z.
    four_sq = torch.stack(
        (
            1 + m00 + m11 + m22,
            1 + m00 - m11 - m22,
            1 - m00 + m11 - m22,
            1 - m00 - m11 + m22,
        ),
        -1,
    )
    # Each row is 4 * big * (w, x, y, z) where big is the component that row divides by.
    candidates = torch.stack(
        (
            torch.stack((four_sq[..., 0], m21 - m12, m02 - m20, m10 - m01), -1),
            torch.stack((m21 - m12, four_sq[..., 1], m10 + m01, m02 + m20), -1),
            torch.stack((m02 - m20, m10 + m01, four_sq[..., 2], m21 + m12), -1),
            torch.stack((m10 - m01, m20 + m02, m21 + m12, four_sq[..., 3]), -1),
        ),
        -2,
    )
    best = four_sq.argmax(-1)
    wxyz = candidates.gather(-2, best[..., None, None].expand(best.shape + (1, 4))).squeeze(-2)
    wxyz = wxyz / wxyz.norm(dim=-1, keepdim=True)
    wxyz = torch.where(wxyz[..., :1] < 0, -wxyz, wxyz)
    return torch.cat((wxyz[..., 1:], wxyz[..., :1]), -1)


def pose_encoding_to_extri_intri(
    pose_enc: Tensor, image_size_hw: tuple[int, int]
) -> tuple[Tensor, Tensor]:
    """Pose encoding [..., 9] = [t, q_xyzw, fov_h, fov_w] (radians) -> extrinsic [..., 3, 4]
    (camera-from-world) and intrinsic [..., 3, 3] for an image of image_size_hw."""
    height, width = image_size_hw
    fov_h, fov_w = pose_enc[..., 7], pose_enc[..., 8]
    extrinsic = torch.cat((quat_to_rotation(pose_enc[..., 3:7]), pose_enc[..., :3, None]), -1)
    intrinsic = pose_enc.new_zeros(pose_enc.shape[:-1] + (3, 3))
    intrinsic[..., 0, 0] = (width / 2) / torch.tan(fov_w / 2)
    intrinsic[..., 1, 1] = (height / 2) / torch.tan(fov_h / 2)
    intrinsic[..., 0, 2] = width / 2
    intrinsic[..., 1, 2] = height / 2
    intrinsic[..., 2, 2] = 1.0
    return extrinsic, intrinsic


def extri_intri_to_pose_encoding(
    extrinsic: Tensor, intrinsic: Tensor, image_size_hw: tuple[int, int]
) -> Tensor:
    """Inverse of `pose_encoding_to_extri_intri` (the principal point is assumed to be centred)."""
    height, width = image_size_hw
    fov_h = 2 * torch.atan((height / 2) / intrinsic[..., 1, 1])
    fov_w = 2 * torch.atan((width / 2) / intrinsic[..., 0, 0])
    quat = rotation_to_quat(extrinsic[..., :3, :3])
    return torch.cat((extrinsic[..., :3, 3], quat, fov_h[..., None], fov_w[..., None]), -1)


def to_homogeneous(transform: Tensor) -> Tensor:
    """[..., 3, 4] (or [..., 4, 4]) rigid transform -> [..., 4, 4]."""
    out = torch.zeros(transform.shape[:-2] + (4, 4), dtype=transform.dtype, device=transform.device)
    out[..., :3, :] = transform[..., :3, :]
    out[..., 3, 3] = 1.0
    return out


def invert_rigid(transform: Tensor) -> Tensor:
    """Closed-form SE(3) inverse [R | t]^-1 = [R^T | -R^T t], as [..., 4, 4].

    Exact for rigid transforms and cheaper and better conditioned than a general matrix inverse.
    """
    rot_t = transform[..., :3, :3].transpose(-1, -2)
    t = transform[..., :3, 3:]
    return to_homogeneous(torch.cat((rot_t, -rot_t @ t), -1))


def world_from_camera(extrinsic: Tensor) -> Tensor:
    """Camera pose in the world ([..., 4, 4]) from a camera-from-world extrinsic."""
    return invert_rigid(extrinsic)


def depth_to_camera_points(depth: Tensor, intrinsic: Tensor) -> Tensor:
    """Z-depth [..., H, W] -> camera-frame points [..., H, W, 3]; pixel (u, v) at integer coords."""
    height, width = depth.shape[-2:]
    v, u = torch.meshgrid(
        torch.arange(height, dtype=depth.dtype, device=depth.device),
        torch.arange(width, dtype=depth.dtype, device=depth.device),
        indexing='ij',
    )
    k = intrinsic[..., None, None, :, :].to(depth.dtype)
    x = (u - k[..., 0, 2]) * depth / k[..., 0, 0]
    y = (v - k[..., 1, 2]) * depth / k[..., 1, 1]
    return torch.stack((x, y, depth), -1)


def depth_to_world_points(depth: Tensor, extrinsic: Tensor, intrinsic: Tensor) -> Tensor:
    """Z-depth [..., H, W] -> world points [..., H, W, 3] given camera-from-world extrinsics."""
    cam_points = depth_to_camera_points(depth, intrinsic)
    pose = world_from_camera(extrinsic).to(depth.dtype)
    rot = pose[..., None, None, :3, :3]
    t = pose[..., None, None, :3, 3]
    return (rot @ cam_points[..., None]).squeeze(-1) + t
