import math

import torch

from vggt_ros.model.geometry import (
    depth_to_camera_points,
    depth_to_world_points,
    extri_intri_to_pose_encoding,
    invert_rigid,
    pose_encoding_to_extri_intri,
    quat_to_rotation,
    rotation_to_quat,
    to_homogeneous,
    world_from_camera,
)

DT = torch.float64


def random_quats(n: int, seed: int = 0) -> torch.Tensor:
    q = torch.randn(n, 4, dtype=DT, generator=torch.Generator().manual_seed(seed))
    return q / q.norm(dim=-1, keepdim=True)


def random_pose_enc(n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    t = torch.randn(n, 3, dtype=DT, generator=gen)
    q = random_quats(n, seed)
    q = torch.where(q[:, 3:] < 0, -q, q)
    fov = 0.3 + 1.5 * torch.rand(n, 2, dtype=DT, generator=gen)
    return torch.cat((t, q, fov), -1)


def test_identity_quaternion_is_identity_rotation():
    rot = quat_to_rotation(torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=DT))
    torch.testing.assert_close(rot, torch.eye(3, dtype=DT))
    torch.testing.assert_close(
        rotation_to_quat(torch.eye(3, dtype=DT)), torch.tensor([0.0, 0, 0, 1], dtype=DT)
    )


def test_90_degrees_about_z():
    h = math.sqrt(0.5)
    rot = quat_to_rotation(torch.tensor([0.0, 0.0, h, h], dtype=DT))
    expected = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=DT)
    torch.testing.assert_close(rot, expected)
    torch.testing.assert_close(rotation_to_quat(expected), torch.tensor([0.0, 0, h, h], dtype=DT))


def test_non_unit_quaternion_gives_proper_rotation():
    q = 3.7 * random_quats(50)
    rot = quat_to_rotation(q)
    torch.testing.assert_close(rot @ rot.transpose(-1, -2), torch.eye(3, dtype=DT).expand(50, 3, 3))
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(50, dtype=DT))
    torch.testing.assert_close(rot, quat_to_rotation(q / 3.7))


def test_rotation_quaternion_round_trips():
    q = random_quats(1000)
    rot = quat_to_rotation(q)
    q_back = rotation_to_quat(rot)
    assert (q_back[..., 3] >= 0).all()
    # q and -q are the same rotation; the result is standardised to a non-negative real part.
    torch.testing.assert_close(q_back, torch.where(q[:, 3:] < 0, -q, q))
    torch.testing.assert_close(quat_to_rotation(q_back), rot)


def test_half_turns_round_trip():
    # Real part zero: every formula but the chosen one divides by ~0.
    for axis in torch.eye(3, dtype=DT):
        rot = 2 * torch.outer(axis, axis) - torch.eye(3, dtype=DT)
        torch.testing.assert_close(quat_to_rotation(rotation_to_quat(rot)), rot)


def test_known_fov_gives_focal_length():
    fov_w = 2 * math.atan(0.5)  # tan(fov_w / 2) = 0.5 -> fx = (W / 2) / 0.5 = W
    fov_h = math.pi / 2  # tan(45°) = 1 -> fy = H / 2
    enc = torch.tensor([1.0, 2, 3, 0, 0, 0, 1, fov_h, fov_w], dtype=DT)
    extrinsic, intrinsic = pose_encoding_to_extri_intri(enc, (392, 518))
    expected_k = torch.tensor([[518.0, 0, 259], [0, 196, 196], [0, 0, 1]], dtype=DT)
    torch.testing.assert_close(intrinsic, expected_k)
    torch.testing.assert_close(
        extrinsic, torch.tensor([[1.0, 0, 0, 1], [0, 1, 0, 2], [0, 0, 1, 3]], dtype=DT)
    )


def test_pose_encoding_round_trips_batched():
    enc = random_pose_enc(24).reshape(2, 3, 4, 9)
    extrinsic, intrinsic = pose_encoding_to_extri_intri(enc, (392, 518))
    assert extrinsic.shape == (2, 3, 4, 3, 4) and intrinsic.shape == (2, 3, 4, 3, 3)
    torch.testing.assert_close(extri_intri_to_pose_encoding(extrinsic, intrinsic, (392, 518)), enc)


def test_world_from_camera_inverts_extrinsic():
    extrinsic, _ = pose_encoding_to_extri_intri(random_pose_enc(20), (14, 28))
    pose = world_from_camera(extrinsic)
    torch.testing.assert_close(
        pose @ to_homogeneous(extrinsic), torch.eye(4, dtype=DT).expand(20, 4, 4)
    )
    torch.testing.assert_close(invert_rigid(pose), to_homogeneous(extrinsic))


def test_unprojection_of_known_pixel():
    intrinsic = torch.tensor([[100.0, 0, 3], [0, 50, 2], [0, 0, 1]], dtype=DT)
    depth = torch.full((4, 6), 2.0, dtype=DT)
    points = depth_to_camera_points(depth, intrinsic)
    assert points.shape == (4, 6, 3)
    # pixel (u=5, v=0): x = (5 - 3) * 2 / 100, y = (0 - 2) * 2 / 50, no half-pixel offset.
    torch.testing.assert_close(points[0, 5], torch.tensor([0.04, -0.08, 2.0], dtype=DT))
    torch.testing.assert_close(points[2, 3], torch.tensor([0.0, 0.0, 2.0], dtype=DT))


def test_world_points_project_back_to_their_pixels():
    enc = random_pose_enc(3)
    extrinsic, intrinsic = pose_encoding_to_extri_intri(enc, (8, 10))
    depth = 1 + torch.rand(3, 8, 10, dtype=DT)
    world = depth_to_world_points(depth, extrinsic, intrinsic)
    cam = torch.einsum('sij,shwj->shwi', extrinsic[..., :3], world) + extrinsic[:, None, None, :, 3]
    torch.testing.assert_close(cam[..., 2], depth)
    pixels = torch.einsum('sij,shwj->shwi', intrinsic, cam)
    u = pixels[..., 0] / pixels[..., 2]
    v = pixels[..., 1] / pixels[..., 2]
    torch.testing.assert_close(u, torch.arange(10, dtype=DT).expand(3, 8, 10))
    torch.testing.assert_close(v, torch.arange(8, dtype=DT)[:, None].expand(3, 8, 10))
