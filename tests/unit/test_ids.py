"""Identifiers: prefixed, unique, and ordered by creation time."""

import re
from unittest import mock

from dirhook.ids import new_id


def test_ids_are_prefixed_and_unique():
    ids = {new_id("usr") for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(re.fullmatch(r"usr_[0-9a-hjkmnp-tv-z]{26}", i) for i in ids)


def test_ids_sort_by_the_millisecond_they_were_made():
    def made_at(ms: int, random: bytes) -> str:
        with mock.patch("time.time_ns", return_value=ms * 1_000_000), mock.patch("os.urandom", return_value=random):
            return new_id("evt")

    moments = (1_700_000_000_000, 1_700_000_000_001, 1_700_000_001_000, 1_800_000_000_000)
    for earlier, later in zip(moments, moments[1:]):
        # the random part never outranks the time
        assert made_at(earlier, b"\xff" * 10) < made_at(later, b"\x00" * 10)
