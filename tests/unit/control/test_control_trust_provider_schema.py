"""TrustProvider documents: an oidc provider needs ``audiences`` (a token's ``aud`` must name
one, exactly), and its ``issuer`` and ``jwksUrl`` are ``https://`` only, also on loopback.
Each refusal is a configuration error at the file, line and field."""

from __future__ import annotations

import pytest

from latchkey.control.loader import ConfigError, load_config_text

HEAD = "apiVersion: latchkey/v1\nkind: TrustProvider\nmetadata: {name: ci}\nspec:\n  type: oidc\n"


def only_issue(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "tp.yaml")
    issues = caught.value.issues
    assert len(issues) == 1, str(caught.value)
    return str(issues[0])


def test_audiences_are_required() -> None:
    text = HEAD + "  issuer: https://token.actions.githubusercontent.com\n"
    issue = only_issue(text)
    assert issue.startswith("tp.yaml:5:3: spec.audiences: "), issue
    assert "an oidc trust provider needs audiences" in issue


def test_empty_audiences_are_refused_at_the_key() -> None:
    text = HEAD + "  issuer: https://token.actions.githubusercontent.com\n  audiences: []\n"
    issue = only_issue(text)
    assert issue.startswith("tp.yaml:7:3: spec.audiences: "), issue
    assert "needs audiences" in issue


def test_an_oidc_provider_with_audiences_loads() -> None:
    text = HEAD + "  issuer: https://issuer.example\n  audiences: [latchkey, other]\n"
    provider = load_config_text(text).trust_provider("ci")
    assert provider.audiences == ("latchkey", "other")
    assert provider.issuer == "https://issuer.example"


def test_a_process_provider_needs_no_audiences() -> None:
    text = (
        "apiVersion: latchkey/v1\nkind: TrustProvider\nmetadata: {name: p}\nspec: {type: process}\n"
    )
    assert load_config_text(text).trust_provider("p").type == "process"


@pytest.mark.parametrize(
    ("field", "line", "url"),
    [
        ("issuer", 6, "http://127.0.0.1:8443"),
        ("issuer", 6, "http://localhost:8443"),
        ("issuer", 6, "http://issuer.example"),
        ("jwksUrl", 7, "http://127.0.0.1:8443/keys"),
        ("jwksUrl", 7, "http://[::1]:8443/keys"),
    ],
)
def test_plain_http_is_refused(field: str, line: int, url: str) -> None:
    urls = {"issuer": "https://issuer.example", "jwksUrl": "https://issuer.example/keys"}
    urls[field] = url
    text = (
        HEAD + f"  issuer: '{urls['issuer']}'\n  jwksUrl: '{urls['jwksUrl']}'\n"
        "  audiences: [latchkey]\n"
    )
    issue = only_issue(text)
    assert issue.startswith(f"tp.yaml:{line}:"), issue
    assert f"spec.{field}: " in issue
    assert "must start with https://" in issue


def test_https_on_loopback_is_fine() -> None:
    text = (
        HEAD + "  issuer: https://127.0.0.1:8443\n  jwksUrl: https://127.0.0.1:8443/keys\n"
        "  audiences: [latchkey]\n"
    )
    provider = load_config_text(text).trust_provider("ci")
    assert provider.jwks_url == "https://127.0.0.1:8443/keys"
