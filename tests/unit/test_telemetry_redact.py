"""presidio depths (naestro[redact]): people and places only in prose, checksummed numbers in data too."""

from __future__ import annotations

import pytest

from naestro.redact import find, presidio_available, redact

pytestmark = pytest.mark.skipif(not presidio_available(), reason="the naestro[redact] extra is not installed")

TEXT = "Ask Maria Gonzalez in Madrid about IBAN DE89370400440532013000."


def test_prose_finds_people_places_and_ibans() -> None:
    kinds = {f.kind for f in find(TEXT, depth="prose")}
    assert {"person", "location", "iban_code"} <= kinds
    out = redact(TEXT, depth="prose")
    assert "Maria" not in out and "Madrid" not in out and "DE8937" not in out


def test_data_depth_keeps_names_but_not_checksummed_numbers() -> None:
    out = redact(TEXT, depth="data")
    assert "Maria Gonzalez" in out and "Madrid" in out and "DE8937" not in out
    assert redact("def parse(self) -> Path: return Path(self.name)", depth="data").startswith("def parse")


def test_an_iban_with_a_wrong_check_digit_is_not_one() -> None:
    assert redact("IBAN DE00370400440532013000", depth="data") == "IBAN DE00370400440532013000"


def test_fast_depth_never_loads_presidio() -> None:
    assert redact(TEXT) == TEXT  # patterns only: no email, key or card here
