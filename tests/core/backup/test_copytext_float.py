"""Double precision columns (the reconciliation score) in COPY text: written as
PostgreSQL 12+ writes float8 (shortest round-trip digits, its exponent and special
spellings), and read back as the same double."""
from __future__ import annotations

import math

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from strongroom.core.backup import copytext as ct
from tests.conftest import PG_AVAILABLE, PG_DSN

VALUES = [0.93, 1.0, 100.0, -2.5, 1 / 3, 1e15, 1e16, 123456789012345.0, 1e-5, 0.0001, 2.5e-7, 1e20,
          -0.0, 5e-324, 1.7976931348623157e308, math.inf, -math.inf]


@given(st.floats(allow_nan=False))
def test_every_double_reads_back_as_itself(value):
    decoded = ct._dec_float(ct._enc_float(value))
    assert decoded == value and math.copysign(1, decoded) == math.copysign(1, value)


def test_nan_reads_back_as_nan_and_junk_is_refused():
    assert math.isnan(ct._dec_float(ct._enc_float(math.nan)))
    for junk in (b"", b"1.2.3", b"0x10", b"inf", b"1e", b"--1"):
        with pytest.raises(ValueError):
            ct._dec_float(junk)


@pytest.mark.skipif(not PG_AVAILABLE, reason="needs PostgreSQL")
def test_the_text_is_postgresqls_own():
    with psycopg.connect(PG_DSN.replace("/test", "/postgres"), autocommit=True) as conn:
        for value in VALUES:
            theirs = conn.execute("SELECT %s::float8::text", (value,)).fetchone()[0]
            assert ct._enc_float(value).decode() == theirs, value
