"""Pairing side messages with images by stamp, over random arrival orders."""

from hypothesis import given
from hypothesis import strategies as st

from vggt_ros.stamp_pairing import BACKWARD_JUMP_NS, PAIRING_TOLERANCE_NS, StampPairing

MS = 1_000_000


@given(
    stamps=st.lists(st.integers(0, 10_000), min_size=1, max_size=40, unique=True),
    query=st.integers(-100, 10_100),
)
def test_the_nearest_recent_message_within_the_tolerance(stamps, query):
    pairing = StampPairing(history=30)
    kept = []
    for stamp in stamps:  # in arrival order, not necessarily in stamp order
        pairing.put(stamp * MS, stamp)
        if kept and stamp * MS < max(kept) * MS - BACKWARD_JUMP_NS:
            kept = []  # time went back: what was held is forgotten
        kept = sorted([*kept, stamp])[-30:]  # the oldest stamps go first
    nearest = min(kept, key=lambda stamp: (abs(stamp - query), stamp))
    found = pairing.nearest(query * MS)
    if abs(nearest - query) * MS > PAIRING_TOLERANCE_NS:
        assert found is None
    else:
        assert abs(found - query) == abs(nearest - query)


def test_an_exact_stamp_wins_and_nothing_pairs_when_empty():
    pairing = StampPairing()
    assert pairing.nearest(5) is None
    pairing.put(100 * MS, 'a')
    pairing.put(105 * MS, 'b')
    assert pairing.nearest(105 * MS) == 'b' and pairing.nearest(101 * MS) == 'a'


def test_a_looping_bag_pairs_again_from_its_first_message():
    """Every message of a 10 Hz bag, twice: after the loop the new messages pair and the old
    loop's newest is no longer the latest."""
    pairing = StampPairing()
    for loop in range(2):
        for index in range(100):
            stamp = 1_000 * MS + index * 100 * MS
            pairing.put(stamp, (loop, index))
            assert pairing.nearest(stamp) == (loop, index)
            assert pairing.latest() == (loop, index)
