"""Webhook signatures: what verifies and what does not."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from diffwatch.alerts.signing import WebhookConfigError, WebhookSettings, sign, verify

KEY = b"k" * 32
BODY = b'{"status": "firing", "value": 0.6}'
T = 1_765_000_000


def test_sign_is_hmac_sha256_of_time_dot_body() -> None:
    mac = hmac.new(KEY, b"1765000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(KEY, BODY, T) == f"t={T},v1={mac}"


def test_verify_accepts_its_own_signature_and_refuses_any_change() -> None:
    header = sign(KEY, BODY, T)
    assert verify(KEY, header, BODY, now=T + 10)
    assert not verify(KEY, header, BODY + b" ", now=T)  # body changed
    assert not verify(b"x" * 32, header, BODY, now=T)  # other key
    assert not verify(KEY, header, BODY, now=T + 301)  # too old: a replay
    assert not verify(KEY, header.replace(f"t={T}", f"t={T + 1}"), BODY, now=T)
    assert not verify(KEY, None, BODY, now=T)
    # a receiver rotating keys may list two signatures
    other = sign(b"y" * 32, BODY, T).split(",")[1]
    assert verify(KEY, f"{header},{other}", BODY, now=T)


@given(st.text(max_size=300))
def test_garbage_headers_never_verify_nor_raise(header: str) -> None:
    assert verify(KEY, header, BODY, now=T) is False


def test_secret_settings(tmp_path) -> None:
    assert WebhookSettings(secret=None, secret_file=None).key() is None
    f = tmp_path / "secret"
    f.write_text("a" * 20 + "\n")
    assert WebhookSettings(secret_file=f).key() == b"a" * 20
    with pytest.raises(WebhookConfigError, match="cannot read"):
        WebhookSettings(secret_file=tmp_path / "missing").key()
    with pytest.raises(WebhookConfigError, match="at least 16"):
        WebhookSettings(secret="short").key()
