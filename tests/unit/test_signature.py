"""The edrv-signature check: what is trusted, what is refused, and the exact bytes that are signed."""

from __future__ import annotations

import pytest

from service.edrv.signature import SignatureError, sign, signature_header, signed_payload, verify_signature

SECRET = "whsec_test_vector"
BODY = b'{"_id":"65b000000000000000000001"}'
T = 1714641247
# Computed independently: printf '%s' '1714641247.<BODY>' | openssl dgst -sha256 -hmac whsec_test_vector
V1_VECTOR = "e1ec9407d94cf96ab6622881c2770ba961b1595eac30ade5e3d54e816619b4d7"
# printf '%s' '<BODY>' | openssl dgst -sha256 -hmac whsec_test_vector
LEGACY_VECTOR = "0ec12f031e41044b1d512e65a77e37c2f9affc2f402fe5c3dc9c5e4a6bdd63d1"


def verify(header: str | None, *, now: float = T, body: bytes = BODY, secret: str = SECRET) -> None:
    verify_signature(header, body, secret=secret, tolerance_s=300, now=now)


def test_signed_string_is_timestamp_dot_raw_body_matching_the_openssl_vector() -> None:
    assert signed_payload(str(T), BODY) == b"1714641247." + BODY
    assert sign(SECRET, signed_payload(str(T), BODY)) == V1_VECTOR
    assert signature_header(SECRET, BODY, T) == f"t={T},v1={V1_VECTOR}"


def test_valid_v1_signature_is_accepted() -> None:
    verify(f"t={T},v1={V1_VECTOR}")


def test_timestamp_in_milliseconds_is_accepted() -> None:
    t_ms = T * 1000 + 123
    verify(signature_header(SECRET, BODY, t_ms), now=T + 1)


def test_uppercase_hex_and_spaces_are_tolerated() -> None:
    verify(f"t={T}, v1={V1_VECTOR.upper()}")


def test_one_matching_v1_among_several_is_enough_during_secret_rotation() -> None:
    verify(f"t={T},v1={'0' * 64},v1={V1_VECTOR}")


def test_legacy_sha256_form_over_the_raw_body_is_accepted() -> None:
    verify(f"sha256={LEGACY_VECTOR}")
    verify(f"sha256={LEGACY_VECTOR.upper()}")


def test_signature_made_with_another_secret_is_refused() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        verify(signature_header("another-secret", BODY, T))


def test_signature_over_another_body_is_refused() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        verify(f"t={T},v1={V1_VECTOR}", body=BODY + b" ")


def test_legacy_signature_with_wrong_secret_is_refused() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        verify(f"sha256={sign('another-secret', BODY)}")


@pytest.mark.parametrize("skew", [-301, 301, 10_000])
def test_timestamp_outside_the_tolerance_window_is_refused(skew: int) -> None:
    with pytest.raises(SignatureError, match="tolerance"):
        verify(f"t={T},v1={V1_VECTOR}", now=T + skew)


def test_timestamp_at_the_edge_of_the_window_is_accepted() -> None:
    verify(f"t={T},v1={V1_VECTOR}", now=T + 300)


def test_missing_header_is_refused() -> None:
    with pytest.raises(SignatureError, match="missing"):
        verify(None)
    with pytest.raises(SignatureError, match="missing"):
        verify("")


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        f"v1={V1_VECTOR}",
        f"t=abc,v1={V1_VECTOR}",
        f"t={T},t={T},v1={V1_VECTOR}",
        f"t={T}",
        f"t={T},v1=",
        f"t={T},,v1={V1_VECTOR}",
        f"t={T},v0={V1_VECTOR}",
        "t=-5,v1=ab",
    ],
)
def test_malformed_header_is_refused_with_a_reason(header: str) -> None:
    with pytest.raises(SignatureError):
        verify(header)


def test_non_ascii_signature_does_not_crash_the_comparison() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        verify(f"t={T},v1=é{V1_VECTOR[1:]}")


@pytest.mark.parametrize("timestamp", ["²", "١٢٣", "12.5", "1e9"])
def test_timestamps_that_are_not_plain_ascii_digits_are_malformed(timestamp: str) -> None:
    with pytest.raises(SignatureError, match="malformed"):
        verify(f"t={timestamp},v1={V1_VECTOR}")
