from dataclasses import replace

import numpy as np
import pytest
import torch

from vggt_ros.checkpoints import load_model
from vggt_ros.frame_size import model_size
from vggt_ros.model import PRESETS, StreamVGGT
from vggt_ros.reconstructor import Reconstructor, preprocess
from vggt_ros.stream_types import FLOW_HEAD, HEADS, RECONSTRUCTOR_HEADS, FrameResult

WIDTH = 56  # small model resolution keeps the end-to-end tests fast


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return load_model(None, preset='tiny')


@pytest.fixture()
def recon(model):
    return Reconstructor(model, image_width=WIDTH)


def random_rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ('hw', 'image_width', 'expected'),
    [
        ((480, 640), 518, (392, 518)),
        ((720, 1280), 518, (294, 518)),
        ((1080, 1920), 518, (294, 518)),
        ((518, 518), 518, (518, 518)),
        ((640, 480), 518, (518, 518)),  # portrait: 686 high after resizing, cropped to 518
        ((480, 640), 280, (210, 280)),
        ((48, 64), WIDTH, (42, WIDTH)),
    ],
)
def test_model_size(hw, image_width, expected):
    assert model_size(*hw, image_width=image_width) == expected


@pytest.mark.parametrize(
    'bad',
    [(10, 0, 518), (480, 640, 500), (480, 640, 0), (1, 10000, 518), (1, 1, 518), (30, 100, 56)],
)
def test_model_size_rejects(bad):
    with pytest.raises(ValueError):
        model_size(*bad[:2], image_width=bad[2])


@pytest.mark.parametrize('hw', [(48, 64), (64, 48), (42, WIDTH), (40, 100)])
def test_preprocess_shape_and_range(recon, hw):
    image = recon.preprocess(random_rgb(*hw))
    assert image.dtype == torch.float32
    assert tuple(image.shape) == (3, *model_size(*hw, image_width=WIDTH))
    assert image.min() >= 0 and image.max() <= 1


def test_preprocess_keeps_exact_size_and_constant_colour(recon):
    rgb = random_rgb(42, WIDTH)
    torch.testing.assert_close(recon.preprocess(rgb), torch.from_numpy(rgb).permute(2, 0, 1) / 255)
    flat = np.full((100, 90, 3), (10, 128, 250), dtype=np.uint8)
    image = recon.preprocess(flat)
    torch.testing.assert_close(
        image, torch.tensor([10, 128, 250.0])[:, None, None].expand_as(image) / 255
    )


def test_portrait_crop_is_centred(recon):
    # Symmetric about the horizontal midline: a centred crop stays so, an offset one does not.
    rows = np.abs(np.arange(200) - 99.5) * 2
    rgb = np.repeat(np.repeat(rows[:, None, None], 60, 1), 3, 2).astype(np.uint8)
    image = recon.preprocess(rgb)
    assert tuple(image.shape) == (3, WIDTH, WIDTH)
    torch.testing.assert_close(image, image.flip(1), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    'rgb',
    [
        np.zeros((48, 64, 3), np.float32),
        np.zeros((48, 64), np.uint8),
        np.zeros((48, 64, 4), np.uint8),
        np.zeros((0, 64, 3), np.uint8),
    ],
)
def test_invalid_input(recon, rgb):
    with pytest.raises(ValueError):
        recon.step(rgb)


def test_step_end_to_end(recon):
    result = recon.step(random_rgb(48, 64), stamp=12.5)
    assert isinstance(result, FrameResult)
    assert (result.frame_index, result.stamp) == (0, 12.5)
    h, w = 42, WIDTH
    for name, shape, dtype in [
        ('depth', (h, w), np.float32),
        ('confidence', (h, w), np.float32),
        ('colours', (h, w, 3), np.uint8),
        ('world_from_camera', (4, 4), np.float64),
        ('camera_from_world', (4, 4), np.float64),
        ('K', (3, 3), np.float64),
        ('pose_enc', (9,), np.float32),
    ]:
        value = getattr(result, name)
        assert value.shape == shape and value.dtype == dtype, name
    pose = result.world_from_camera
    np.testing.assert_allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-9)
    assert np.linalg.det(pose[:3, :3]) == pytest.approx(1.0)
    np.testing.assert_array_equal(pose[3], [0, 0, 0, 1])
    np.testing.assert_allclose(pose @ result.camera_from_world, np.eye(4), atol=1e-9)
    # Nothing reads the point head's outputs downstream: it does not run unless asked for.
    assert result.world_points is None and result.world_points_conf is None
    assert result.K[0, 2] == w / 2 and result.K[1, 2] == h / 2
    assert (result.depth > 0).all() and (result.confidence > 1).all()
    assert set(result.timings) == {'preprocess', 'model', 'postprocess'}
    assert all(t >= 0 for t in result.timings.values())
    assert recon.step(random_rgb(48, 64, seed=1)).frame_index == 1


def test_the_point_head_runs_on_request_and_changes_nothing_else(recon):
    rgb = random_rgb(48, 64)
    options = recon.session.options
    with_points = Reconstructor(recon.model, image_width=WIDTH, options=options, heads=HEADS)
    asked, default = with_points.step(rgb), recon.step(rgb)
    assert asked.world_points.shape == (42, WIDTH, 3) and asked.world_points_conf.shape == (
        42,
        WIDTH,
    )
    np.testing.assert_array_equal(asked.depth, default.depth)
    np.testing.assert_array_equal(asked.pose_enc, default.pose_enc)
    with pytest.raises(ValueError, match='camera and depth'):
        Reconstructor(recon.model, image_width=WIDTH, heads=('camera', 'point'))


def test_reset_starts_a_new_world(recon):
    frames = [random_rgb(48, 64, seed=s) for s in range(3)]
    first = [recon.step(f) for f in frames]
    recon.reset()
    again = [recon.step(f) for f in frames]
    assert [r.frame_index for r in again] == [0, 1, 2]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_allclose(a.world_from_camera, b.world_from_camera, atol=1e-5)
        np.testing.assert_allclose(a.depth, b.depth, rtol=1e-5)
    # The second frame depends on the first: feeding it alone gives a different answer.
    recon.reset()
    alone = recon.step(frames[1])
    assert not np.allclose(alone.pose_enc, first[1].pose_enc)


def test_from_checkpoint_tiny():
    recon = Reconstructor.from_checkpoint(None, preset='tiny', image_width=28, window=2)
    assert recon.step(random_rgb(30, 30)).depth.shape == (28, 28)


def test_rejects_bad_options(model):
    with pytest.raises(ValueError):
        Reconstructor(model, image_width=50)
    with pytest.raises(ValueError):
        Reconstructor(model, precision='fp8')


def test_tracking_scale_is_checked_and_left_to_poses_from_matches(model):
    for scale in (0, 5, 2.0):
        with pytest.raises(ValueError, match='tracking_scale'):
            Reconstructor(model, image_width=WIDTH, tracking_scale=scale)
    recon = Reconstructor(model, image_width=WIDTH, tracking_scale=2)  # no flow head: the model's
    assert recon.tracking_scale == 1
    assert recon.preprocess(random_rgb(2 * WIDTH, 2 * WIDTH)).shape[-1] == WIDTH


@pytest.mark.parametrize('size', [(640, 480), (1920, 1080), (500, 230), (720, 1280)])
@pytest.mark.parametrize('scale', [2, 3])
def test_the_tracked_frame_is_the_models_view_at_a_finer_scale(size, scale):
    """Portrait frames are cropped: the tracked frame must crop the very rows the model sees, as
    registration assumes (a crop taken again at the finer width was 2-6 rows off)."""
    height, width = size
    ramp = np.linspace(0, 255, height)[:, None, None] * np.ones((1, width, 3))
    rgb = ramp.round().astype(np.uint8)
    model_view = preprocess(rgb, 112)
    flow_model = StreamVGGT(replace(PRESETS['tiny'], flow_head=True))  # tracks at `scale`
    heads = (*RECONSTRUCTOR_HEADS, FLOW_HEAD)  # pose_source: matches
    tracked = Reconstructor(flow_model, image_width=112, tracking_scale=scale, heads=heads)
    tracked = tracked.preprocess(rgb)
    assert tracked.shape[-2:] == tuple(scale * n for n in model_view.shape[-2:])
    blocks = torch.nn.functional.avg_pool2d(tracked[None], scale)[0]
    assert (blocks - model_view).abs().mean() < 1e-3
