"""Depth registered back to the input image: the model's crop and resize undone exactly."""

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from vggt_ros.frame_size import model_size
from vggt_ros.registration import covered_rows, register_depth, to_model_grid
from vggt_ros.synthetic import make_sequence

NAN = np.nan


def indexed(shape: tuple[int, int]) -> np.ndarray:
    """Model depth whose value is its flat pixel index, so a registered value names its source."""
    return np.arange(shape[0] * shape[1], dtype=np.float32).reshape(shape)


def test_hand_computed_case():
    # Input 8 rows x 5 columns, image_width 28 (the geometry holds for any size, even one the
    # model would refuse). resized = round(8 * 28 / 5 / 14) * 14 = round(3.2) * 14 = 42 rows,
    # cropped to 28 from top = (42 - 28) // 2 = 7. The scales differ: 42 / 8 = 5.25 down,
    # 28 / 5 = 5.6 across.
    # Rows: (y + 0.5) * 5.25 - 7 = -4.375 0.875 6.125 11.375 16.625 21.875 27.125 32.375
    #   -> cut, 0, 6, 11, 16, 21, 27, cut (outside [0, 28)).
    # Columns: (x + 0.5) * 5.6 = 2.8 8.4 14.0 19.6 25.2 -> 2, 8, 14, 19, 25 (14.0 exactly on a
    # border: floor keeps 14).
    # Value = row * 28 + column.
    expected = np.array(
        [
            [NAN, NAN, NAN, NAN, NAN],
            [2, 8, 14, 19, 25],
            [170, 176, 182, 187, 193],
            [310, 316, 322, 327, 333],
            [450, 456, 462, 467, 473],
            [590, 596, 602, 607, 613],
            [758, 764, 770, 775, 781],
            [NAN, NAN, NAN, NAN, NAN],
        ],
        dtype=np.float32,
    )
    registered = register_depth(indexed((28, 28)), (8, 5), 28)
    assert registered.dtype == np.float32
    np.testing.assert_array_equal(registered, expected)
    assert covered_rows((8, 5), 28) == slice(1, 7)


def test_identity_at_model_size():
    depth = np.random.default_rng(0).uniform(0.5, 10, (392, 518)).astype(np.float32)
    depth[100:120, 200:260] = NAN
    assert model_size(392, 518, 518) == depth.shape
    np.testing.assert_array_equal(register_depth(depth, depth.shape, 518), depth)


@pytest.mark.parametrize('model', [(28, 56), (392, 518)])
def test_exact_2x_downscale_fills_2x2_blocks(model):
    height, width = model
    depth = indexed(model)
    assert model_size(2 * height, 2 * width, width) == model  # no crop
    registered = register_depth(depth, (2 * height, 2 * width), width)
    np.testing.assert_array_equal(registered, depth.repeat(2, axis=0).repeat(2, axis=1))


def test_portrait_crop_leaves_a_centred_band():
    # 480x640 portrait at 518: resized 686 rows, cropped to 518 from top = 84.
    input_size, model = (640, 480), (518, 518)
    assert model_size(*input_size, 518) == model
    registered = register_depth(np.full(model, 2.0, np.float32), input_size, 518)
    band = covered_rows(input_size, 518)
    assert band == slice(78, 562)
    inside = np.zeros(input_size[0], bool)
    inside[band] = True
    assert np.isfinite(registered[inside]).all()
    assert np.isnan(registered[~inside]).all()
    assert band.start == input_size[0] - band.stop  # as many rows cut above as below


@pytest.mark.parametrize('input_size', [(480, 640), (1080, 1920), (640, 480)])
def test_values_and_nans_are_copied_from_their_source_pixel(input_size):
    model = model_size(*input_size, 518)
    depth = np.random.default_rng(1).uniform(0.5, 10, model).astype(np.float32)
    depth[np.random.default_rng(2).random(model) < 0.2] = NAN
    band = covered_rows(input_size, 518)
    source = register_depth(indexed(model), input_size, 518)[band].astype(np.intp)
    registered = register_depth(depth, input_size, 518)
    np.testing.assert_array_equal(registered[band], depth.ravel()[source])
    assert np.isnan(registered[band]).mean() == pytest.approx(0.2, abs=0.02)


def test_wrong_depth_size_is_refused():
    with pytest.raises(ValueError, match='model size'):
        register_depth(np.zeros((518, 518), np.float32), (480, 640), 518)


def test_matches_the_full_resolution_render_away_from_edges():
    sequence = make_sequence('walk', 1, width=320, height=240)
    _, truth = sequence.render(0)
    model = model_size(240, 320, 112)
    _, depth = sequence.model_frame(0, *model)
    registered = register_depth(depth.numpy(), (240, 320), 112)
    assert np.isin(registered, depth.numpy()).all()  # copied model values, never a blend
    window = sliding_window_view(np.pad(truth, 3, mode='edge'), (7, 7))
    smooth = window.max(axis=(2, 3)) / window.min(axis=(2, 3)) < 1.05
    assert smooth.mean() > 0.5
    error = np.abs(registered - truth)[smooth] / truth[smooth]
    assert np.median(error) < 0.01
    assert np.percentile(error, 90) < 0.03


@pytest.mark.parametrize('input_size', [(84, 112), (240, 320), (640, 480), (1080, 1920)])
def test_sampling_at_model_pixels_inverts_registration(input_size):
    """A model-size image registered to an input at least as large and sampled back is itself."""
    height, width = model_size(*input_size, 112)
    depth = np.arange(height * width, dtype=np.float32).reshape(height, width)
    registered = register_depth(depth, input_size, 112)
    np.testing.assert_array_equal(to_model_grid(registered, 112), depth)
