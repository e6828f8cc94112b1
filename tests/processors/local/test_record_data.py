"""Record data in either form the runner meets it: the wire's base64 text or bytes (``processors.local.events``)."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from processors.local import events


@given(st.binary(max_size=300))
def test_sizes_and_forms_agree_whichever_form_the_data_has(data: bytes) -> None:
    text = base64.b64encode(data).decode()
    assert events.data_size(text) == events.data_size(data) == len(data)
    assert events.base64_size(data) == events.base64_size(text) == len(text)
    assert events.base64_text(data) == events.base64_text(text) == text
    assert events.data_bytes(text) == events.data_bytes(data) == data
