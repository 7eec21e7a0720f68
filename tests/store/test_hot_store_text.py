"""The hot store writes timestamps as text the ORM reads back: it must be datetime's text exactly."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from switch.store.hot_store import _naive, _padded, _pow2_parts, _utc


def _reference(epoch: float) -> str:
    return _utc(epoch).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False, allow_infinity=False))
def test_naive_text_equals_datetime_isoformat(epoch: float) -> None:
    assert _naive(epoch) == _reference(epoch)


@given(st.integers(min_value=0, max_value=4_102_444_799), st.sampled_from([0.0, 5e-7, 1.5e-6, 0.4999995, 0.9999995, 0.9999999]))
def test_naive_text_rounds_like_datetime_at_the_edges(second: int, fraction: float) -> None:
    assert _naive(second + fraction) == _reference(second + fraction)


@given(st.integers(min_value=0, max_value=5000), st.sampled_from([1, 200, 256, 500, 1500]))
def test_pow2_parts_cover_every_row_once_in_a_few_statement_sizes(n: int, most: int) -> None:
    parts = _pow2_parts(n, most)
    at = 0
    for i, size in parts:  # contiguous, in order, each a power of two within the limit
        assert i == at and size & (size - 1) == 0 and 0 < size <= most
        at += size
    assert at == n
    top = 1 << (most.bit_length() - 1)
    assert len(parts) <= n // top + top.bit_length()  # whole chunks, then at most one of each smaller size


def test_padded_lists_repeat_the_last_member_up_to_a_power_of_two() -> None:
    assert _padded([]) == []
    assert _padded([7]) == [7]
    assert _padded([1, 2, 3]) == [1, 2, 3, 3]
    assert len(_padded(list(range(200)))) == 256
