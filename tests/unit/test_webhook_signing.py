"""Outbound webhooks are signed as Standard Webhooks, verifiable by the reference library."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from service.outbound.signing import headers, new_secret, signing_keys

BODY = b'{"id":"msg_7","type":"ticket.offered","data":{}}'


def test_new_secrets_are_whsec_base64_of_32_random_bytes() -> None:
    first, second = new_secret(), new_secret()
    assert first != second
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32


def test_a_receiver_verifies_the_headers_with_the_reference_library() -> None:
    secret = new_secret()
    now = datetime.now(UTC)
    sent = headers([secret], "msg_7", now, BODY)
    assert sent["webhook-id"] == "msg_7"
    assert sent["webhook-timestamp"] == str(int(now.timestamp()))
    assert Webhook(secret).verify(BODY, sent) is not None
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, sent)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY + b" ", sent)


def test_the_signature_is_hmac_sha256_of_id_timestamp_and_body() -> None:
    secret = new_secret()
    now = datetime.fromtimestamp(1_800_000_000, UTC)
    sent = headers([secret], "msg_7", now, BODY)
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = hmac.new(key, b"msg_7.1800000000." + BODY, hashlib.sha256).digest()
    assert sent["webhook-signature"] == "v1," + base64.b64encode(expected).decode()


def test_during_a_rotation_both_secrets_sign_so_either_verifies() -> None:
    new, old = new_secret(), new_secret()
    now = datetime.now(UTC)
    sent = headers([new, old], "msg_8", now, BODY)
    assert len(sent["webhook-signature"].split(" ")) == 2
    assert Webhook(new).verify(BODY, sent) is not None
    assert Webhook(old).verify(BODY, sent) is not None


def test_the_previous_secret_signs_only_until_its_overlap_ends() -> None:
    now = datetime.now(UTC)
    assert signing_keys("new", "old", now + timedelta(hours=1), now) == ["new", "old"]
    assert signing_keys("new", "old", now, now) == ["new"]
    assert signing_keys("new", None, None, now) == ["new"]


def test_the_timestamp_is_the_attempts_in_whole_seconds() -> None:
    now = datetime.fromtimestamp(time.time() // 1 + 0.75, UTC)
    sent = headers([new_secret()], "msg_9", now, BODY)
    assert sent["webhook-timestamp"] == str(int(now.timestamp()))
