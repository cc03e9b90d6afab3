"""The password rules shared by registration, personal links and "forgot password"."""

from __future__ import annotations

import pytest

from provisioning.services.passwords import common_passwords, password_problem


def refusal(password: str, *personal: str) -> str | None:
    problem = password_problem(password, personal=personal)
    return None if problem is None else problem[0] % problem[1]


@pytest.mark.parametrize(
    "password", ["лодка плывёт по реке", "correct horse battery", "Ёжик-в-тумане-7"]
)
def test_long_passwords_pass(password: str) -> None:
    assert refusal(password, "Иван Петров", "@ivan.petrov:school.example", "+79005550102") is None


def test_length_is_bounded_both_ways() -> None:
    assert refusal("1a2b3c4") == "The password needs at least 8 characters."
    assert refusal("x1" * 129) == "The password may have at most 256 characters."


@pytest.mark.parametrize(
    "password", ["12345678", "QWERTY123", "йцукенгш", "aaaaaaaaaa", "abababab"]
)
def test_well_known_and_repetitive_passwords_are_refused(password: str) -> None:
    assert (
        refusal(password) == "This password is one of the first an attacker tries. Choose another."
    )


@pytest.mark.parametrize(
    ("password", "personal"),
    [
        ("ivan.petrov", "@ivan.petrov:school.example"),
        ("Ivan_Petrov_1990", "ivan.petrov"),
        ("89005550102", "+79005550102"),
        ("+7 (900) 555-01-02", "+79005550102"),
        ("иванпетров", "Иван Петров"),
    ],
)
def test_the_persons_own_name_or_number_is_refused(password: str, personal: str) -> None:
    assert refusal(password, personal) == (
        "The password must not be your name, user name or phone number."
    )


def test_the_list_is_read_without_its_comment() -> None:
    words = common_passwords()
    assert "qwerty123" in words and not any(w.startswith("#") for w in words)
