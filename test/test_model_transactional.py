"""A failed StreamSession.step leaves the session exactly as before, as if the frame never came."""

import contextlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vggt_ros.bench.baselines import fork_reference_style
from vggt_ros.bench.harness import max_difference
from vggt_ros.model import MergingConfig

HEIGHT, WIDTH = 28, 42  # 2 x 3 patches, 11 tokens per frame
POOL = 16
MERGING = MergingConfig(merge_start=2)  # tiny has 4 global blocks: 2 whole, 2 merged
# Where a step can fail, each a module and the call (within the step) that raises: late in the
# aggregator, in the last camera-trunk iteration (after the aggregator), after the camera head.
SITES = {
    'global-first': (lambda model: model.aggregator.global_blocks[0], 1),
    'global-last': (lambda model: model.aggregator.global_blocks[-1], 1),
    'camera-trunk': (lambda model: model.camera_head.trunk[-1], 4),
    'point-head': (lambda model: model.point_head, 1),
}


class Injected(BaseException):
    """Not an Exception: the step must roll back on anything, KeyboardInterrupt included."""


@pytest.fixture(scope='module')
def images():
    return torch.rand(POOL, 3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(0))


@contextlib.contextmanager
def failing(model, site):
    """Make the step inside fail at `site` (a SITES key)."""
    module_of, call = SITES[site]
    calls = []

    def hook(module, args, output):
        calls.append(None)
        if len(calls) == call:
            raise Injected(site)

    handle = module_of(model).register_forward_hook(hook)
    try:
        with pytest.raises(Injected):
            yield
    finally:
        handle.remove()


def state(session):
    """Everything a step may change: per cache layer its spans and valid keys/values."""
    layers = [
        (layer.spans, layer.num_tokens, layer.keys.clone(), layer.values.clone())
        for cache in session.caches
        for layer in cache.layers
    ]
    return layers, session.frames_seen, session._image_size, session.merging


def assert_same_state(actual, expected):
    (layers, *rest), (expected_layers, *expected_rest) = actual, expected
    assert rest == expected_rest
    assert len(layers) == len(expected_layers)
    for (spans, tokens, keys, values), (spans0, tokens0, keys0, values0) in zip(
        layers, expected_layers, strict=True
    ):
        assert spans == spans0 and tokens == tokens0
        assert torch.equal(keys, keys0) and torch.equal(values, values0)


def buffers(session):
    pointers = [
        (layer.keys.data_ptr(), layer.values.data_ptr(), layer.capacity)
        for cache in session.caches
        for layer in cache.layers
    ]
    return pointers, session.cache_bytes


def assert_same_outputs(actual, expected):
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        assert torch.equal(actual[name], value), name


def twins(model, window, camera_cache):
    return [model.new_session(window=window, camera_cache=camera_cache) for _ in range(2)]


@pytest.mark.parametrize('site', SITES)
@pytest.mark.parametrize('camera_cache', ['official', 'causal'])
@pytest.mark.parametrize('window', [3, None])
def test_failed_step_changes_nothing(model, images, window, camera_cache, site):
    """Four frames fill a window of 3, so the failed fifth evicts (and the anchor stays)."""
    session, twin = twins(model, window, camera_cache)
    for image in images[:4]:
        session.step(image)
        twin.step(image)
    before, allocated = state(session), buffers(session)
    with failing(model, site):
        session.step(images[4])
    assert_same_state(state(session), before)
    if window is not None:
        assert buffers(session) == allocated
    for image in images[5:7]:
        assert_same_outputs(session.step(image), twin.step(image))


@pytest.mark.parametrize('site', ['global-last', 'camera-trunk'])
def test_failed_merged_step_undoes_the_shift(model, images, site):
    """Whole frames 1-2, then merged ones: the failed frame evicts a whole frame while the last
    placed is merged, so merged layers shift the window and the first two layers move a frame."""
    session, twin = twins(model, 3, 'official')
    for t, image in enumerate(images[:4]):
        for each in (session, twin):
            each.set_merging(MERGING if t == 3 else None)
            each.step(image)
    merged = session.caches[0].layers[-1].spans
    assert merged[-1][1] < merged[0][1]  # the last placed frame is merged, shorter
    before = state(session)
    with failing(model, site):
        session.step(images[4])
    assert_same_state(state(session), before)
    for image in images[5:7]:
        assert_same_outputs(session.step(image), twin.step(image))


def test_failure_while_opening_the_frames(model, images, monkeypatch):
    """A camera cache layer that cannot open the frame: the caches already opened roll back."""
    session, twin = twins(model, 3, 'causal')
    for image in images[:3]:
        session.step(image)
        twin.step(image)
    before = state(session)
    layer = session.caches[1].layers[1]

    def refuse():
        raise Injected('new_frame')

    monkeypatch.setattr(layer, 'new_frame', refuse)
    with pytest.raises(Injected):
        session.step(images[3])
    monkeypatch.undo()
    assert_same_state(state(session), before)
    assert_same_outputs(session.step(images[4]), twin.step(images[4]))


def test_failed_first_frame_leaves_a_fresh_session(model, images):
    session, twin = twins(model, 3, 'official')
    with failing(model, 'global-last'):
        session.step(images[0, :, :14])  # another size, forgotten with the frame
    assert session.frames_seen == session.window_fill == 0
    assert_same_outputs(session.step(images[1]), twin.step(images[1]))


def test_reference_style_cache_drops_the_failed_frame(model, images):
    """The benchmark's reference-style global cache (swapped in) rolls back with the others."""
    reference = fork_reference_style(model.new_session(), (HEIGHT, WIDTH))
    ours = model.new_session()
    for image in images[:2]:
        reference.step(image)
        ours.step(image)
    with failing(model, 'camera-trunk'):
        reference.step(images[2])
    assert reference.window_fill == 2 and reference.caches[0][0].keys.shape[2] == 2
    assert max_difference(reference.step(images[3]), ours.step(images[3])) <= 1e-6


OPS = st.one_of(
    st.just(('good',)),
    st.just(('toggle',)),
    st.tuples(st.just('fail'), st.sampled_from(sorted(SITES))),
)


@settings(max_examples=20, deadline=None)
@given(
    ops=st.lists(OPS, min_size=1, max_size=10), camera_cache=st.sampled_from(['official', 'causal'])
)
def test_failures_are_invisible_in_any_stream(model, images, ops, camera_cache):
    """Random good frames, failing frames and merging toggles against a twin that sees only the
    good frames and the toggles: after every failure the state and every output agree."""
    session, twin = twins(model, 3, camera_cache)
    frames = iter(images.repeat(2, 1, 1, 1))
    for op in ops:
        image = next(frames)
        if op[0] == 'good':
            assert_same_outputs(session.step(image), twin.step(image))
        elif op[0] == 'toggle':
            for each in (session, twin):
                each.set_merging(None if each.merging else MERGING)
        else:
            before = state(session) if session.frames_seen else None
            with failing(model, op[1]):
                session.step(image)
            if before is not None:
                assert_same_state(state(session), before)
    assert session.frames_seen == twin.frames_seen
    assert_same_outputs(session.step(images[-1]), twin.step(images[-1]))


def test_a_camera_that_is_not_one_is_undone(model, images):
    """An fp16 overflow, say: the frame's keys and values would spoil every later frame, so the
    step raises and the session is as before it, the next frames as if it never came."""
    session, twin = twins(model, 3, 'official')
    for image in images[:4]:
        session.step(image)
        twin.step(image)
    before = state(session)

    def overflow(module, args, output):
        return [torch.full_like(encoding, float('inf')) for encoding in output]

    def no_rotation(module, args, output):  # a zero quaternion: no camera either
        return [torch.cat([e[..., :3], 0 * e[..., 3:7], e[..., 7:]], -1) for e in output]

    for hook in (overflow, no_rotation):
        handle = model.camera_head.register_forward_hook(hook)
        try:
            with pytest.raises(FloatingPointError, match='no usable camera'):
                session.step(images[4])
        finally:
            handle.remove()
    assert_same_state(state(session), before)
    for image in images[5:7]:
        assert_same_outputs(session.step(image), twin.step(image))


def test_a_session_without_the_camera_head_steps(model, images):
    """The camera check applies where there is a camera: a depth-only session (the flow head's
    depth-tilt fit in make train streams one) steps as before."""
    session = model.new_session(window=3, heads=('depth',))
    for image in images[:4]:
        out = session.step(image)
        assert set(out) == {'depth', 'depth_conf'}
        assert torch.isfinite(out['depth']).all()
    assert session.frames_seen == 4


def test_a_frame_is_kept_only_once_the_callers_block_finishes(model, images):
    """`stepping`: what the caller makes of the outputs can still fail the frame, which is then
    undone as a failure in the model would be; the next frames are as if it never came."""
    session, twin = twins(model, 3, 'official')
    for image in images[:4]:
        session.step(image)
        twin.step(image)
    before = state(session)
    with pytest.raises(Injected):
        with session.stepping(images[4]) as out:
            assert torch.isfinite(out['pose_enc']).all()
            raise Injected('the caller failed')
    assert_same_state(state(session), before)
    with session.stepping(images[5]) as out:
        assert_same_outputs(out, twin.step(images[5]))
    assert session.frames_seen == twin.frames_seen == 5
