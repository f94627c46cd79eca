"""RecordIO framing: records survive any chunking; garbage is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.v1.recordio import Decoder, RecordIOError, encode


@given(st.lists(st.binary(max_size=300), max_size=20), st.data())
def test_records_survive_any_chunking(records, data):
    stream = b"".join(encode(record) for record in records)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder = Decoder()
    got = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got += decoder.feed(stream[start:end])
    assert got == records


@pytest.mark.parametrize("garbage", [b"abc\n", b"-1\nx", b"9" * 30, b"99999999999\n"])
def test_garbage_is_refused(garbage):
    with pytest.raises(RecordIOError):
        Decoder(max_record=1024).feed(garbage)
