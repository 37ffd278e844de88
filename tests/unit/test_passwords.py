"""argon2id hashing round trips, salts, rehash detection, and the password policy."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from diffwatch.auth.passwords import (
    MIN_LENGTH,
    WeakPassword,
    check_policy,
    hash_password,
    needs_rehash,
    policy_problems,
    verify_or_waste_time,
    verify_password,
)

GOOD = "correct horse battery"


def test_a_hash_verifies_its_password_and_is_argon2id() -> None:
    h = hash_password(GOOD)
    assert h.startswith("$argon2id$")
    assert GOOD not in h
    assert verify_password(h, GOOD)


def test_a_wrong_password_does_not_verify() -> None:
    h = hash_password(GOOD)
    assert not verify_password(h, GOOD + "!")
    assert not verify_password(h, GOOD.upper())
    assert not verify_password(h, "")


def test_a_broken_hash_does_not_verify_and_needs_rehash() -> None:
    assert not verify_password("not a hash", GOOD)
    assert needs_rehash("not a hash")


def test_hashes_are_salted() -> None:
    a, b = hash_password(GOOD), hash_password(GOOD)
    assert a != b
    assert verify_password(a, GOOD) and verify_password(b, GOOD)


def test_an_unknown_user_never_verifies() -> None:
    assert not verify_or_waste_time(None, GOOD)
    assert verify_or_waste_time(hash_password(GOOD), GOOD)


def test_hashes_with_old_parameters_need_a_rehash() -> None:
    old = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(GOOD)
    assert verify_password(old, GOOD)  # still logs in with the old parameters
    assert needs_rehash(old)
    assert not needs_rehash(hash_password(GOOD))


def test_the_policy_names_each_problem() -> None:
    assert policy_problems(GOOD, "alice") == []
    short = policy_problems("short", "alice")
    assert len(short) == 1 and f"at least {MIN_LENGTH}" in short[0] and "5 characters" in short[0]
    same = policy_problems("Alice.Smith", "alice.smith")
    assert same == ["it is the username; choose something others cannot guess from it"]
    assert any("only spaces" in p for p in policy_problems(" " * 12))
    assert any("at most" in p for p in policy_problems("x" * 5000))


def test_check_policy_raises_with_the_user_and_every_reason() -> None:
    check_policy(GOOD, "alice")
    with pytest.raises(WeakPassword, match="password for user 'bob' refused: it has 3") as e:
        check_policy("bob", "bob")
    assert "it is the username" in str(e.value)


@pytest.mark.parametrize("common", ["aaaaaaaaaa", "password123", "Password123", "qwertyuiop"])
def test_common_and_easily_guessed_passwords_are_refused(common) -> None:
    problems = policy_problems(common, "alice")
    assert len(problems) == 1 and "choose another" in problems[0], problems
    with pytest.raises(WeakPassword, match="refused: it is"):
        check_policy(common, "alice")


def test_the_common_password_message_names_the_list() -> None:
    (problem,) = policy_problems("password123")
    assert "most common passwords" in problem and "unrelated words" in problem
