"""argon2id password hashing (argon2-cffi) and the password policy of local accounts.

The policy refuses passwords that attackers try first: those on the list of the 30,000 most
common passwords that ships with zxcvbn (Dropbox's estimator, from leaked-password
corpora), and those zxcvbn estimates under 10^8 guesses (score below 3: repeats such as
``aaaaaaaaaa``, keyboard walks, dates, a dictionary word with digits).
"""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 10  # characters
# argon2 would hash a megabyte happily, but a login form should not make us try.
MAX_LENGTH = 1024  # characters
MIN_SCORE = 3  # zxcvbn's 0-4 scale; 3: at least 10^8 guesses ("safely unguessable")
ESTIMATE_CHARS = 100  # zxcvbn's time grows fast with length; its first 100 characters tell
_FIX = "choose another, for example three or four unrelated words"


class WeakPassword(ValueError):
    """A password that the policy refuses; the message says why and what to do."""


@lru_cache(maxsize=1)
def hasher() -> PasswordHasher:
    """The argon2id hasher with the library's current recommended parameters (RFC 9106)."""
    # The defaults track the library's recommendation, so an upgrade of argon2-cffi that
    # raises them makes needs_rehash() true for old hashes and logins upgrade them.
    return PasswordHasher()


def hash_password(password: str) -> str:
    """A salted argon2id hash of ``password`` as a PHC string ($argon2id$v=19$m=...)."""
    return hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches ``password_hash`` (constant-time, in the library)."""
    try:
        return hasher().verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password("not a real password; only spends the time a real check takes")


def verify_or_waste_time(password_hash: str | None, password: str) -> bool:
    """Like verify_password, but for an unknown user (None) spend the same time and fail.

    A login that answers faster for unknown usernames tells an attacker which ones exist.
    """
    if password_hash is None:
        verify_password(_dummy_hash(), password)
        return False
    return verify_password(password_hash, password)


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with other parameters than the current ones."""
    try:
        return hasher().check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True


def policy_problems(password: str, username: str | None = None) -> list[str]:
    """What is wrong with ``password`` for account ``username`` (empty: it is acceptable)."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(
            f"it has {len(password)} characters; use at least {MIN_LENGTH} "
            "(a few unrelated words make a long password that is easy to type)"
        )
    if len(password) > MAX_LENGTH:
        problems.append(f"it has {len(password)} characters; use at most {MAX_LENGTH}")
    if not password.strip():
        problems.append("it is only spaces; use letters, digits or words")
    if username and password.strip().lower() == username.strip().lower():
        problems.append("it is the username; choose something others cannot guess from it")
    if not problems:  # the rules above say what to fix first; guessability after them
        problems.extend(_guessability_problems(password, username))
    return problems


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def _guessability_problems(password: str, username: str | None) -> list[str]:
    """Whether ``password`` is a common password or one zxcvbn guesses fast."""
    from zxcvbn import zxcvbn

    if password.strip().lower() in _common_passwords():
        return [
            "it is on the list of the 30,000 most common passwords (shipped with zxcvbn), "
            f"which attackers try first; {_FIX}"
        ]
    inputs = [username, "diffwatch"] if username else ["diffwatch"]
    result = zxcvbn(password[:ESTIMATE_CHARS], user_inputs=inputs)
    if result["score"] >= MIN_SCORE:
        return []
    why = result["feedback"].get("warning") or "it follows a pattern that is quick to guess"
    return [f"it is easy to guess ({why.rstrip('.')}); {_FIX}"]


def check_policy(password: str, username: str | None = None) -> None:
    """Raise WeakPassword naming every problem of ``password`` under the policy."""
    problems = policy_problems(password, username)
    if problems:
        who = f" for user {username!r}" if username else ""
        raise WeakPassword(f"password{who} refused: {'; '.join(problems)}")
