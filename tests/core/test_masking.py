"""Masking rules (the source's): enough to tell records apart, not to identify anyone."""
from hypothesis import given, strategies as st

from strongroom.core.masking import REDACTED, mask_field, mask_record


def test_ssn_keeps_only_last_four():
    assert mask_field("ssn", "912-34-5678") == "***-**-5678"


def test_email_keeps_two_letters_and_domain():
    assert mask_field("email", "jordan.ashford@example.org") == "jo***@example.org"


def test_phone_keeps_last_four_digits():
    assert mask_field("phone", "(555) 010-1234") == "***-***-1234"


def test_address_keeps_house_number_only():
    assert mask_field("address", "12 Maple Street, Springfield") == "12 ***"


def test_free_text_phi_is_redacted_whole():
    assert mask_field("medical_history", "panic episodes") == REDACTED
    assert mask_field("date_of_birth", "1980-01-02") == REDACTED


def test_record_masks_only_phi_fields():
    masked = mask_record({"id": 1, "ssn": "912345678", "status": "ACTIVE"}, ("ssn",))
    assert masked == {"id": 1, "ssn": "***-**-5678", "status": "ACTIVE"}


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_masked_ssn_never_contains_the_first_five_digits(ssn):
    assert mask_field("ssn", ssn) == f"***-**-{ssn[-4:]}"


@given(st.text())
def test_phone_and_ssn_keep_the_last_four_digits_whatever_surrounds_them(value):
    """Any text, digits of any script included: the mask keeps the last four characters
    that are digits, in order, and nothing else of the value."""
    import re
    last_four = "".join(re.findall(r"\d", value))[-4:]
    assert mask_field("phone", value) == f"***-***-{last_four}"
    assert mask_field("ssn", value) == f"***-**-{last_four}"


@given(st.text())
def test_the_four_digits_a_masked_ssn_shows_are_the_four_its_blind_index_searches_on(value):
    from strongroom.core.crypto.blind_index import normalise
    assert mask_field("ssn", value) == f"***-**-{normalise('ssn_last4', value)}"


@given(st.text(), st.text(alphabet=st.characters(categories=("Nd", "No")), max_size=6))
def test_a_value_ending_in_digits_masks_as_any_other(value, tail):
    """The shortcut for a value that ends in four digits (most SSNs and phones) keeps
    what the general rule keeps: digits of any script count, other numerals (², ½) do not."""
    import re
    text = value + tail
    last_four = "".join(re.findall(r"\d", text))[-4:]
    assert mask_field("phone", text) == f"***-***-{last_four}"
    assert mask_field("ssn", text) == f"***-**-{last_four}"
