"""The stream policy without ROS: resets, skips and stamps over whole sequences of frames."""

from hypothesis import given, settings
from hypothesis import strategies as st

from vggt_ros.continuity import (
    OUT_OF_ORDER,
    REPEATED_STAMP,
    RESET_REQUESTED,
    StreamContinuity,
)

SIZE, OTHER_SIZE = (70, 126), (56, 126)
SECOND = 1_000_000_000
TOLERANCE = 0.5


def follow(policy, size, stamp, received=7 * SECOND, tolerance=TOLERANCE):
    """Admit a frame and act on it as the node does when the model step succeeds."""
    admission = policy.admit(size, stamp, received, tolerance)
    if admission.skip is None:
        if admission.reset:
            policy.started_new_world(answered_request=admission.reset == RESET_REQUESTED)
        policy.processed(size, admission.stamp_ns)
    return admission


def test_a_stream_that_moves_forward_just_continues():
    policy = StreamContinuity()
    for stamp in (SECOND, 2 * SECOND, 2 * SECOND + 1):
        admission = follow(policy, SIZE, stamp)
        assert (admission.reset, admission.skip, admission.stamp_ns) == (None, None, stamp)


def test_repeated_and_slightly_late_stamps_are_skipped_not_reset():
    policy = StreamContinuity()
    follow(policy, SIZE, 10 * SECOND)
    assert follow(policy, SIZE, 10 * SECOND).skip == REPEATED_STAMP
    assert follow(policy, SIZE, 10 * SECOND - 1).skip == OUT_OF_ORDER  # 1 ns back
    assert follow(policy, SIZE, 10 * SECOND - SECOND // 2).skip == OUT_OF_ORDER  # at tolerance
    assert follow(policy, SIZE, 11 * SECOND).skip is None


def test_a_large_jump_back_or_a_new_size_resets():
    policy = StreamContinuity()
    follow(policy, SIZE, 10 * SECOND)
    looped = follow(policy, SIZE, SECOND)
    assert 'backwards by 9.000 s' in looped.reset and looped.skip is None
    resized = follow(policy, OTHER_SIZE, 2 * SECOND)
    assert resized.reset == 'image size changed from 126x70 to 126x56'


def test_a_requested_reset_comes_first_and_forgets_the_stamps():
    policy = StreamContinuity()
    follow(policy, SIZE, 10 * SECOND)
    policy.request_reset()
    # Even a repeated stamp starts the new world: the request says to forget the old one.
    assert follow(policy, SIZE, 10 * SECOND).reset == RESET_REQUESTED
    assert follow(policy, SIZE, 11 * SECOND).reset is None
    # After a reset, going back in time (the bag restarted by hand) needs no second reset.
    policy.request_reset()
    follow(policy, SIZE, 12 * SECOND)
    assert follow(policy, SIZE, 13 * SECOND).reset is None


def test_the_decision_changes_nothing_until_the_caller_acts():
    policy = StreamContinuity()
    follow(policy, SIZE, 10 * SECOND)
    policy.request_reset()
    for _ in range(3):  # e.g. the model step failed each time: still the same decision
        assert policy.admit(SIZE, 11 * SECOND, 0, TOLERANCE).reset == RESET_REQUESTED
    policy.started_new_world(answered_request=True)
    assert policy.admit(SIZE, 11 * SECOND, 0, TOLERANCE).reset is None


def test_a_reset_requested_during_an_automatic_one_is_not_lost():
    """~/reset arrives after the policy chose an automatic reset (a size change) for a frame:
    that reset does not answer it, so the next frame still restarts the world."""
    policy = StreamContinuity()
    follow(policy, SIZE, 10 * SECOND)
    admission = policy.admit((SIZE[0] + 14, SIZE[1]), 11 * SECOND, 0, TOLERANCE)
    assert admission.reset.startswith('image size changed')
    policy.request_reset()  # from the service thread, while the frame is in the model
    policy.started_new_world(answered_request=False)
    policy.processed((SIZE[0] + 14, SIZE[1]), 11 * SECOND)
    assert policy.admit((SIZE[0] + 14, SIZE[1]), 12 * SECOND, 0, TOLERANCE).reset == RESET_REQUESTED


def test_unstamped_frames_get_their_receipt_time_and_one_warning():
    policy = StreamContinuity()
    first = follow(policy, SIZE, 0, received=5 * SECOND)
    second = follow(policy, SIZE, 0, received=6 * SECOND)
    assert (first.stamp_ns, second.stamp_ns) == (5 * SECOND, 6 * SECOND)
    assert 'stamped 0' in first.warning and second.warning is None
    assert second.skip is None and second.reset is None


events = st.one_of(
    st.tuples(st.just('frame'), st.sampled_from([SIZE, OTHER_SIZE]), st.integers(0, 20 * SECOND)),
    st.tuples(st.just('reset'), st.none(), st.none()),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(events, max_size=40), st.floats(0.0, 5.0))
def test_within_a_world_one_size_and_strictly_increasing_stamps(sequence, tolerance):
    policy = StreamContinuity()
    world: list[tuple[tuple[int, int], int]] = []
    requested = False
    for kind, size, stamp in sequence:
        if kind == 'reset':
            policy.request_reset()
            requested = True
            continue
        admission = follow(policy, size, stamp, received=3 * SECOND, tolerance=tolerance)
        assert admission.reset is None or admission.skip is None
        if requested:
            assert admission.reset == RESET_REQUESTED
            requested = False
        if admission.reset:
            world = []
        if admission.skip:
            last = world[-1][1]
            assert admission.skip == (
                REPEATED_STAMP if admission.stamp_ns == last else OUT_OF_ORDER
            )
            assert 0 <= (last - admission.stamp_ns) * 1e-9 <= tolerance
            continue
        world.append((size, admission.stamp_ns))
        assert len({size for size, _ in world}) == 1
        stamps = [stamp for _, stamp in world]
        assert stamps == sorted(set(stamps))
