"""Image decoding pinned by hand-computed bytes: every encoding, the 16-to-8-bit rule, the refusals.

Messages are plain namespaces (the fields are all decoding reads), so rclpy and rosbags messages
are both covered. Expected values come from the documented formulas, not from the OpenCV calls
the code makes.
"""

import io
import struct
import zlib
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from vggt_ros import images
from vggt_ros.images import CORRUPT, TOO_LARGE, UNSUPPORTED, ImageError

PAD = 0xAA


def image(encoding, width, height, step, payload, big_endian=False):
    return SimpleNamespace(
        encoding=encoding,
        width=width,
        height=height,
        step=step,
        is_bigendian=big_endian,
        data=bytes(payload),
    )


def compressed(fmt, data):
    return SimpleNamespace(format=fmt, data=bytes(data))


def bt601(y, u, v):
    """OpenCV's documented YUV -> RGB: BT.601 video range, coefficients in 20-bit fixed point."""
    shift = 20
    cy, cvr, cug, cvg, cub = (
        round(c * (1 << shift)) for c in (1.164, 1.596, -0.391, -0.813, 2.018)
    )
    luma = max(y - 16, 0) * cy + (1 << (shift - 1))
    u, v = u - 128, v - 128
    rgb = (luma + cvr * v, luma + cug * u + cvg * v, luma + cub * u)
    return [min(max(c >> shift, 0), 255) for c in rgb]


def to_8bit(value):
    """cv_bridge's 16 -> 8 bits: value * 255 / 65535, rounded to nearest (never a tie)."""
    return (510 * value + 65535) // 131070


def test_bt601_reference_matches_hand_values():
    assert bt601(16, 128, 128) == [0, 0, 0]
    assert bt601(235, 128, 128) == [255, 255, 255]
    # BT.601 red (81, 90, 240): R = 65 * 1.164 + 112 * 1.596 = 254.4; G and B fall below zero.
    assert bt601(81, 90, 240) == [254, 0, 0]


# Bytes per pixel and rows per image row of every layout, to build valid messages of any size.
LAYOUT = {
    **dict.fromkeys(['rgb8', 'bgr8', '8UC3'], (3, 1)),
    **dict.fromkeys(['rgba8', 'bgra8'], (4, 1)),
    **dict.fromkeys(['mono8', '8UC1'], (1, 1)),
    **dict.fromkeys(['bayer_rggb8', 'bayer_bggr8', 'bayer_gbrg8', 'bayer_grbg8'], (1, 1)),
    **dict.fromkeys(['mono16', '16UC1'], (2, 1)),
    **dict.fromkeys(['rgb16', 'bgr16'], (6, 1)),
    **dict.fromkeys(['rgba16', 'bgra16'], (8, 1)),
    **dict.fromkeys(['yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv'], (2, 1)),
    **dict.fromkeys(['nv12', 'nv21'], (1, 1.5)),
}


def test_the_layout_table_covers_every_accepted_encoding():
    assert set(LAYOUT) == set(images.COLOUR_ENCODINGS)
    assert images.COLOUR_ENCODINGS[0] == 'rgb8'


@pytest.mark.parametrize('encoding', images.COLOUR_ENCODINGS)
def test_every_encoding_decodes_to_rgb8(encoding):
    width, height, pad = 4, 2, 3
    bytes_per_pixel, rows = LAYOUT[encoding]
    step = width * bytes_per_pixel + pad
    payload = np.random.default_rng(0).integers(0, 256, int(height * rows) * step, np.uint8)
    rgb = images.image_to_rgb(image(encoding, width, height, step, payload))
    assert rgb.shape == (height, width, 3) and rgb.dtype == np.uint8


@pytest.mark.parametrize(
    'encoding, pixel, expected',
    [
        ('rgb8', [1, 2, 3], [1, 2, 3]),
        ('bgr8', [1, 2, 3], [3, 2, 1]),
        ('8UC3', [1, 2, 3], [3, 2, 1]),  # cv_bridge gives 8UC3 bgr8's type
        ('rgba8', [1, 2, 3, 4], [1, 2, 3]),
        ('bgra8', [1, 2, 3, 4], [3, 2, 1]),
        ('mono8', [7], [7, 7, 7]),
        ('8UC1', [7], [7, 7, 7]),
    ],
)
def test_eight_bit_layouts_reorder_channels(encoding, pixel, expected):
    row = pixel * 2 + [PAD] * 2
    rgb = images.image_to_rgb(image(encoding, 2, 2, len(row), row * 2))
    assert rgb.reshape(-1, 3).tolist() == [expected] * 4


SIXTEEN_BIT = [0, 128, 129, 255, 256, 32767, 32768, 65535]
EIGHT_BIT = [0, 0, 1, 1, 1, 127, 128, 255]


def test_sixteen_to_eight_bit_rule_is_pinned():
    assert [to_8bit(v) for v in SIXTEEN_BIT] == EIGHT_BIT


@pytest.mark.parametrize('encoding', ['mono16', '16UC1'])
@pytest.mark.parametrize('big_endian', [False, True])
def test_mono16_scales_like_cv_bridge_with_padding_and_byte_order(encoding, big_endian):
    order = '>' if big_endian else '<'
    rows = [struct.pack(f'{order}4H', *SIXTEEN_BIT[i : i + 4]) + bytes([PAD] * 4) for i in (0, 4)]
    rgb = images.image_to_rgb(image(encoding, 4, 2, 12, b''.join(rows), big_endian))
    assert rgb[:, :, 0].ravel().tolist() == EIGHT_BIT
    assert (rgb == rgb[:, :, :1]).all()


@pytest.mark.parametrize(
    'encoding, channels, order',
    [
        ('rgb16', 3, [0, 1, 2]),
        ('bgr16', 3, [2, 1, 0]),
        ('rgba16', 4, [0, 1, 2]),
        ('bgra16', 4, [2, 1, 0]),
    ],
)
def test_colour_16_bit_layouts(encoding, channels, order):
    values = [256, 32768, 65535, 129][:channels]
    rgb = images.image_to_rgb(
        image(encoding, 1, 1, 2 * channels, struct.pack(f'<{channels}H', *values))
    )
    assert rgb[0, 0].tolist() == [to_8bit(values[i]) for i in order]


@settings(max_examples=30, deadline=None)
@given(
    pixels=st.lists(st.integers(0, 65535), min_size=6, max_size=6),
    big_endian=st.booleans(),
    pad=st.integers(0, 3),
)
def test_mono16_rule_holds_for_any_values(pixels, big_endian, pad):
    order = '>' if big_endian else '<'
    rows = [struct.pack(f'{order}3H', *pixels[i : i + 3]) + bytes(2 * pad) for i in (0, 3)]
    rgb = images.image_to_rgb(image('mono16', 3, 2, 6 + 2 * pad, b''.join(rows), big_endian))
    assert rgb[:, :, 1].ravel().tolist() == [to_8bit(v) for v in pixels]


# Two rows of one pixel pair each: (Y0, Y1, U, V) per row.
YUV_PAIRS = [(81, 145, 90, 240), (16, 235, 128, 128)]


@pytest.mark.parametrize(
    'encoding, pack',
    [
        ('yuv422', lambda y0, y1, u, v: [u, y0, v, y1]),  # ROS yuv422 is UYVY
        ('uyvy', lambda y0, y1, u, v: [u, y0, v, y1]),
        ('yuv422_yuy2', lambda y0, y1, u, v: [y0, u, y1, v]),
        ('yuyv', lambda y0, y1, u, v: [y0, u, y1, v]),
    ],
)
def test_422_pairs_share_chroma_with_bt601(encoding, pack):
    payload = sum((pack(*pair) + [PAD] * 2 for pair in YUV_PAIRS), [])
    rgb = images.image_to_rgb(image(encoding, 2, 2, 6, payload))
    expected = [[bt601(y, u, v) for y in (y0, y1)] for y0, y1, u, v in YUV_PAIRS]
    assert rgb.tolist() == expected


def nv(encoding, lumas, chroma, width, step):
    """A 4:2:0 image: luma rows, then one interleaved chroma row per two luma rows."""
    rows = [list(row) + [PAD] * (step - width) for row in (*lumas, *chroma)]
    return image(encoding, width, len(lumas), step, sum(rows, []))


def test_nv12_blocks_of_four_share_chroma_with_bt601():
    lumas = [[81, 90, 16, 235], [100, 110, 120, 130]]
    blocks = [(90, 240), (128, 128)]  # (U, V) of the left and right 2x2 blocks
    rgb = images.image_to_rgb(nv('nv12', lumas, [[90, 240, 128, 128]], width=4, step=6))
    expected = [[bt601(y, *blocks[x // 2]) for x, y in enumerate(row)] for row in lumas]
    assert rgb.tolist() == expected


def test_nv21_is_nv12_with_u_and_v_swapped():
    lumas = np.random.default_rng(3).integers(0, 256, (4, 6)).tolist()
    chroma = np.random.default_rng(4).integers(0, 256, (2, 6))
    swapped = chroma.reshape(2, 3, 2)[:, :, ::-1].reshape(2, 6)
    nv12 = images.image_to_rgb(nv('nv12', lumas, chroma.tolist(), width=6, step=6))
    nv21 = images.image_to_rgb(nv('nv21', lumas, swapped.tolist(), width=6, step=6))
    assert np.array_equal(nv12, nv21)
    unswapped = images.image_to_rgb(nv('nv21', lumas, chroma.tolist(), width=6, step=6))
    assert not np.array_equal(nv12, unswapped)


BAYER = {'bayer_rggb8': 'RGGB', 'bayer_bggr8': 'BGGR', 'bayer_gbrg8': 'GBRG', 'bayer_grbg8': 'GRBG'}


@pytest.mark.parametrize('encoding', BAYER)
def test_uniform_bayer_mosaic_decodes_to_its_colour(encoding):
    colour = {'R': 200, 'G': 100, 'B': 30}
    pattern = BAYER[encoding]  # the top-left 2x2, row by row
    mosaic = [[colour[pattern[2 * (y % 2) + x % 2]] for x in range(8)] for y in range(6)]
    rgb = images.image_to_rgb(image(encoding, 8, 6, 8, sum(mosaic, [])))
    assert (rgb.reshape(-1, 3) == [200, 100, 30]).all()


def test_rgb8_stays_a_view_and_numpy_data_works_like_rosbags():
    data = np.arange(12, dtype=np.uint8)
    msg = SimpleNamespace(encoding='rgb8', width=2, height=2, step=6, is_bigendian=0, data=data)
    rgb = images.image_to_rgb(msg)
    assert np.shares_memory(rgb, data) and rgb[1, 1].tolist() == [9, 10, 11]


def test_cv_bridge_is_used_when_present_except_for_nv12_and_nv21(monkeypatch):
    calls = []

    def cvt_color2(pixels, source, target):
        calls.append((pixels.shape, source, target))
        return np.zeros((*pixels.shape[:2], 3), np.uint8)

    monkeypatch.setattr(images, '_cv_bridge', lambda: cvt_color2)
    images.image_to_rgb(image('uyvy', 2, 1, 4, [128, 16, 128, 16]))
    images.image_to_rgb(image('16UC1', 1, 1, 2, [0, 1]))
    images.image_to_rgb(image('rgb8', 1, 1, 3, [1, 2, 3]))
    assert calls == [((1, 2, 2), 'yuv422', 'rgb8'), ((1, 1), 'mono16', 'rgb8')]
    nv12 = images.image_to_rgb(nv('nv12', [[16, 16], [16, 16]], [[128, 128]], 2, 2))
    assert len(calls) == 2 and (nv12 == 0).all()


class Untouchable:
    """Message data that fails the test if decoding reads it."""

    def __len__(self):
        raise AssertionError('the data was read before the size check')


def test_too_large_is_refused_before_reading_the_data():
    msg = image('rgb8', 8000, 6000, 24000, b'')
    msg.data = Untouchable()
    with pytest.raises(
        ImageError, match='8000x6000 image .48000000 pixels. is above the limit of 40000000 pixels'
    ) as error:
        images.image_to_rgb(msg, max_pixels=40_000_000)
    assert error.value.kind == TOO_LARGE
    small = image('mono8', 2, 2, 2, [1, 2, 3, 4])
    assert images.image_to_rgb(small, max_pixels=4).shape == (2, 2, 3)


@pytest.mark.parametrize(
    'msg, match',
    [
        (image('rgb8', 0, 0, 0, b''), 'corrupt rgb8 image: 0x0 has no pixels'),
        (image('mono8', 3, 0, 3, b''), '3x0 has no pixels'),
        (image('rgb8', 2, 2, 6, [0] * 11), 'needs step >= 6 and 12 bytes, got step 6 and 11'),
        (image('mono16', 2, 1, 3, [0] * 3), 'needs step >= 4'),
        (image('nv12', 2, 2, 2, [0] * 4), 'needs step >= 2 and 6 bytes'),
        (
            image('yuv422', 3, 1, 6, [0] * 6),
            'corrupt yuv422 image: 3x1, chroma needs an even width',
        ),
        (image('yuyv', 1, 2, 2, [0] * 4), 'yuyv image: 1x2, chroma needs an even width'),
        (image('nv21', 2, 3, 2, [0] * 9), 'nv21 image: 2x3, chroma needs an even width and height'),
        (image('nv12', 3, 2, 3, [0] * 9), 'even width and height'),
    ],
)
def test_unusable_images_are_corrupt(msg, match):
    with pytest.raises(ImageError, match=match) as error:
        images.image_to_rgb(msg)
    assert error.value.kind == CORRUPT


def test_unknown_encodings_are_unsupported_and_name_the_supported_ones():
    with pytest.raises(ImageError, match="'yuv420'; supported: rgb8, bgr8, .*nv21") as error:
        images.image_to_rgb(image('yuv420', 2, 2, 2, [0] * 6))
    assert error.value.kind == UNSUPPORTED
    assert images.unsupported_encoding('x', ('y',)).kind == UNSUPPORTED
    with pytest.raises(ImageError, match="'bayer_rggb16'") as error:
        images.image_to_array(image('bayer_rggb16', 1, 1, 2, [0, 0]))
    assert error.value.kind == UNSUPPORTED


def test_image_to_array_errors_are_image_errors():
    with pytest.raises(ImageError, match='corrupt 32FC1 image') as error:
        images.image_to_array(image('32FC1', 2, 1, 8, [0] * 7))
    assert error.value.kind == CORRUPT


def png(pixels):
    ok, data = cv2.imencode('.png', pixels)
    assert ok
    return data.tobytes()


def test_sixteen_bit_grey_png_uses_the_rule_not_saturation():
    grey = np.array([SIXTEEN_BIT], np.uint16)
    rgb = images.compressed_to_rgb(compressed('mono16; png compressed mono16', png(grey)))
    assert rgb[0, :, 0].tolist() == EIGHT_BIT
    assert (rgb == rgb[:, :, :1]).all()


def test_sixteen_bit_colour_png_is_bgr_on_the_wire():
    bgr = np.array([[[256, 32768, 65535], [0, 129, 128]]], np.uint16)
    rgb = images.compressed_to_rgb(compressed('rgb16; png compressed bgr16', png(bgr)))
    assert rgb.tolist() == [[[255, 128, 1], [0, 1, 0]]]


def test_eight_bit_png_channels_grey_and_alpha():
    grey = np.array([[0, 7, 255]], np.uint8)
    assert images.compressed_to_rgb(compressed('png', png(grey)))[0, 1].tolist() == [7, 7, 7]
    bgra = np.array([[[1, 2, 3, 4]]], np.uint8)
    assert images.compressed_to_rgb(compressed('png', png(bgra)))[0, 0].tolist() == [3, 2, 1]


def png_chunk(kind, body):
    return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body))


def png_header(width, height):
    ihdr = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b'\x89PNG\r\n\x1a\n' + png_chunk(b'IHDR', ihdr)


def jpeg_header(width, height):
    """SOI, a baseline frame header for 3 components, a scan header, then no real scan data."""
    frame = struct.pack('>HBHHB', 17, 8, height, width, 3) + bytes.fromhex('012200021101031101')
    scan = struct.pack('>HB', 12, 3) + bytes.fromhex('010002110311003f00')
    return b'\xff\xd8\xff\xc0' + frame + b'\xff\xda' + scan


GARBAGE = bytes(range(256)) * 4
BOMBS = {
    'png': png_header(20000, 20000) + GARBAGE,
    'png with an IDAT': png_header(20000, 20000) + png_chunk(b'IDAT', GARBAGE),
    'jpeg': jpeg_header(20000, 20000) + GARBAGE,
}


@pytest.mark.parametrize('name', BOMBS)
@pytest.mark.filterwarnings('error')
def test_a_header_claiming_20000_squared_is_refused_before_decoding(name):
    msg = compressed(name.split()[0], BOMBS[name])
    with pytest.raises(ImageError) as error:
        images.compressed_to_rgb(msg, max_pixels=40_000_000)
    assert error.value.kind == TOO_LARGE and '(400000000 pixels)' in str(error.value)
    if name.startswith('png'):  # JPEG sizes come from Pillow, whose own, higher limit hits first
        assert '20000x20000 image (400000000 pixels) is above the limit of 40000000' in str(
            error.value
        )
    with pytest.raises(ImageError):
        images.compressed_to_rgb(msg)


@pytest.mark.filterwarnings('error')
def test_pillow_bomb_limits_become_image_errors():
    huge = compressed('jpeg', jpeg_header(60000, 60000) + GARBAGE)  # above Pillow's own limit
    with pytest.raises(ImageError, match='3600000000 pixels') as error:
        images.compressed_to_rgb(huge)
    assert error.value.kind == TOO_LARGE
    between = compressed('jpeg', jpeg_header(10000, 10000) + GARBAGE)  # Pillow only warns
    with pytest.raises(ImageError, match='10000x10000') as error:
        images.compressed_to_rgb(between, max_pixels=40_000_000)
    assert error.value.kind == TOO_LARGE


@pytest.mark.parametrize(
    'fmt, data',
    [
        ('png', png(np.zeros((4, 4), np.uint8))[:-20]),  # truncated
        ('png', png_header(2, 2) + GARBAGE),
        ('jpeg', b'not a jpeg'),
        ('jpeg', b''),
        ('jpeg', jpeg_header(16, 16) + GARBAGE),
    ],
)
def test_corrupt_compressed_images(fmt, data):
    with pytest.raises(ImageError, match=f"cannot decode '{fmt}' image") as error:
        images.compressed_to_rgb(compressed(fmt, data))
    assert error.value.kind == CORRUPT


def test_unknown_compressed_format_is_unsupported():
    with pytest.raises(ImageError, match="unsupported compressed format 'webp'") as error:
        images.compressed_to_rgb(compressed('webp', b'RIFF'))
    assert error.value.kind == UNSUPPORTED


def test_jpeg_decodes_close_to_its_source():
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0], rgb[..., 2] = 200, 50
    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, format='JPEG', quality=95)
    decoded = images.compressed_to_rgb(compressed('jpeg', buffer.getvalue()), max_pixels=256)
    assert np.abs(decoded.astype(int) - rgb).max() <= 3
