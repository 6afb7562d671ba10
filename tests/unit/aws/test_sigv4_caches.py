"""SigV4's caches: results are the same cached or not, and long client-sent keys stay out."""

from __future__ import annotations

import datetime as dt

from latchkey.aws import sigv4, sigv4verify

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
CREDS = sigv4.Credentials("AKIDEXAMPLE", "secret/key", "session-token")


def signed(path: str, extra: list[tuple[str, str]]) -> sigv4.HttpRequest:
    headers = (("Host", "kms.us-east-1.amazonaws.com"), ("X-Amz-Target", "T.Op"), *extra)
    unsigned = sigv4.HttpRequest("POST", path, "", headers, b"{}")
    out = sigv4.sign_request_headers(unsigned, CREDS, region="us-east-1", service="kms", now=NOW)
    return sigv4.HttpRequest("POST", path, "", out, b"{}")


def verify(req: sigv4.HttpRequest) -> None:
    info = sigv4verify.parse_signed_request(req)
    sigv4verify.check_request_time(info, NOW, max_skew=dt.timedelta(minutes=5))
    sigv4verify.verify_signature(req, info, CREDS.secret_key)


def test_long_paths_and_header_lists_verify_and_are_not_cached() -> None:
    long_path = "/" + "a" * (sigv4.CACHED_KEY_CHARS * 2)
    many = [(f"X-Amz-Meta-{i:03d}-{'x' * 20}", str(i)) for i in range(40)]
    caches = (
        sigv4._canonical_uri_cached,
        sigv4verify._signed_header_names_cached,
        sigv4._sorted_names_cached,
    )
    for cache in caches:
        cache.cache_clear()
    for _ in range(2):  # the second time round, nothing may come from a cache it should not
        verify(signed(long_path, many))
    assert [cache.cache_info().currsize for cache in caches] == [0, 0, 0]


def test_cached_and_uncached_answers_agree() -> None:
    for path in ("/", "/a/./b/../c", "/x%2Fy z"):
        for normalize in (True, False):
            for encode in (True, False):
                assert sigv4._canonical_uri(path, normalize, encode) == (
                    sigv4._canonical_uri_uncached(path, normalize, encode)
                )
    assert sigv4.format_amz_date(NOW) == "20240501T120000Z"
    assert sigv4.format_amz_date(NOW + dt.timedelta(microseconds=999_999)) == "20240501T120000Z"
    assert sigv4.format_amz_date(NOW + dt.timedelta(seconds=1)) == "20240501T120001Z"
    assert sigv4.format_amz_date(NOW) == "20240501T120000Z"  # back again: no stale text
