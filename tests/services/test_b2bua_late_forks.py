"""The note a B-leg leaves with the transaction layer for Timer M: what LateForks builds its ACK and BYE from."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from switch.services.b2bua.uac_leg import _pack_seed, _seed_request, _unpack_seed

values = st.one_of(st.none(), st.text(max_size=40))


@given(st.tuples(values, values, values, values, values, values))
def test_a_seed_survives_packing_with_none_empty_and_non_ascii(seed: tuple[str | None, ...]) -> None:
    assert _unpack_seed(_pack_seed(seed)) == seed


def test_a_packed_seed_rebuilds_the_request_a_dialog_is_made_from() -> None:
    seed = ("INVITE", "sip:22000002@127.0.0.1:5070", "<sip:+4722000001@sw>;tag=ab", "c1@sw", "1 INVITE", None)
    req = _seed_request(_unpack_seed(_pack_seed(seed)))
    assert req.method == "INVITE" and str(req.uri) == seed[1]
    assert req.from_.tag == "ab" and req.call_id == "c1@sw" and req.cseq.seq == 1
    assert req.headers.get("Contact") is None


def test_a_truncated_note_is_refused() -> None:
    import pytest

    data = _pack_seed(("INVITE", "sip:a@b", "f", "c", "1 INVITE", "x"))
    with pytest.raises(ValueError):
        _unpack_seed(data[:-1])
    with pytest.raises(ValueError):
        _unpack_seed(data[: len(data) // 2])
