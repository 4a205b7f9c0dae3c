"""PII redaction leaves technical words alone (issue 18: "python3" became ``[REDACTED:pii:…]`` in the live header,
``runs show``, ``runs list`` and report.md) and still catches e-mails, card numbers and people's names.

Property tests (hypothesis) at every depth; the prose depth runs presidio's real spaCy NER when the
``naestro[redact]`` extra is installed, the patterns alone otherwise.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from naestro.redact import Depth, find, presidio_available, redact
from naestro.technical import is_technical, name_like

DEPTHS: list[Depth] = ["fast", "data", "prose"]
_SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# What code is written in: snake_case names, and any identifier with a digit or an underscore. A capitalised
# all-letter word ("Maria") is not here on purpose: written alone in prose it may well be a name.
snake = st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True)
marked = st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,8}[0-9_][A-Za-z0-9_]{0,8}", fullmatch=True)
identifiers = st.one_of(snake, marked)
digit_identifiers = st.from_regex(r"[a-z][a-z_]{0,10}[0-9]{1,3}[a-z_]{0,5}", fullmatch=True)
file_names = st.builds(lambda stem, ext: f"{stem}.{ext}", identifiers,
                       st.sampled_from(["py", "txt", "csv", "json", "md", "sh", "toml", "yaml"]))
dotted = st.lists(identifiers, min_size=2, max_size=4).map(".".join)
paths = st.lists(identifiers, min_size=1, max_size=3).flatmap(
    lambda parts: file_names.map(lambda f: "/".join([*parts, f])))
commands = st.one_of(
    st.builds(lambda f: f"python3 {f}", file_names),
    st.builds(lambda f: f"pytest -q {f}", file_names),
    st.builds(lambda m, f: f"python3 -c \"from {m} import {f}; print({f}(2))\"", identifiers, identifiers),
    st.builds(lambda f: f"cat {f} | wc -l", paths),
    st.builds(lambda a, b: f"{a} --{b}", digit_identifiers, identifiers),
)
technical = st.one_of(digit_identifiers, file_names, dotted, paths, commands)
sentences = st.sampled_from([
    "Create {} that prints hello, and check it by running it.",
    "Check it by running {}.",
    "Write fib.py and run {} to test it.",
    "{} should print the total.",
    "Ask about {} before you start.",
])


@_SLOW
@given(token=technical, sentence=sentences, depth=st.sampled_from(DEPTHS))
def test_identifiers_file_names_and_commands_are_never_redacted(token: str, sentence: str, depth: Depth) -> None:
    text = sentence.format(token)
    assert redact(text, depth=depth) == text, find(text, depth=depth)


def _luhn_complete(body: str) -> str:
    digits = [int(c) for c in body]
    total = 0
    for i, n in enumerate(reversed(digits)):
        if i % 2 == 0:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return body + str((10 - total % 10) % 10)


cards = st.builds(lambda prefix, rest: _luhn_complete(prefix + rest), st.sampled_from(["4", "51", "55", "2221"]),
                  st.text(alphabet=string.digits, min_size=11, max_size=11)).map(lambda c: c[:16])
cards = cards.filter(lambda c: len(c) == 16 or len(c) in (13, 15))
emails = st.builds(lambda user, host, tld: f"{user}@{host}.{tld}",
                   st.text(alphabet=string.ascii_lowercase + string.digits + "._", min_size=1, max_size=12).filter(
                       lambda u: u[0].isalnum()),
                   st.text(alphabet=string.ascii_lowercase, min_size=2, max_size=10),
                   st.sampled_from(["com", "org", "io", "de"]))


def _grouped(card: str, sep: str) -> str:
    return sep.join(card[i:i + 4] for i in range(0, len(card), 4)) if len(card) == 16 else card


@_SLOW
@given(card=cards.filter(lambda c: len(c) == 16), email=emails, sep=st.sampled_from(["", " ", "-"]),
       depth=st.sampled_from(DEPTHS))
def test_emails_and_card_numbers_are_always_redacted(card: str, email: str, sep: str, depth: Depth) -> None:
    shown = _grouped(card, sep)
    text = f"Charge the card {shown} and mail the receipt to {email} (run python3 bill.py)."
    out = redact(text, depth=depth)
    assert shown not in out and email not in out and "python3 bill.py" in out
    assert {f.kind for f in find(text, depth=depth)} >= {"card", "email"}


def test_the_issue_goal_keeps_its_words() -> None:
    goal = "Create hello.py that prints hello, and check it by running python3 hello.py"
    assert redact(goal, depth="prose") == goal


@pytest.mark.skipif(not presidio_available(), reason="the naestro[redact] extra is not installed")
def test_a_person_in_prose_is_still_redacted() -> None:
    out = redact("Write hello.txt saying Hello, and email it to Maria Gonzalez in Madrid.", depth="prose")
    assert "Maria" not in out and "Madrid" not in out and "hello.txt" in out


def test_the_shape_of_a_name() -> None:
    assert name_like("Maria Gonzalez") and name_like("O'Brien") and name_like("Anne-Marie") and name_like("McDonald")
    assert not name_like("python3") and not name_like("Python") and not name_like("DataFrame")
    assert not name_like("hello") and not name_like("")
    text = "run hello.py and python3 then ask Ada."
    assert is_technical(text, text.index("hello"), text.index("hello") + 5)  # NER cut "hello" out of hello.py
    assert is_technical(text, text.index("python3"), text.index("python3") + 7)
    assert not is_technical(text, text.index("Ada"), text.index("Ada") + 3)
