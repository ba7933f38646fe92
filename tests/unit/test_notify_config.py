"""Configuring notifications: apprise URLs checked with errors that never show the URL, the
scheme label, and the settings model."""

from __future__ import annotations

import logging

import pytest
from pydantic import BaseModel, ValidationError

from cloud.notify import (
    AppriseChannel,
    AppriseUrls,
    NotifySettings,
    RateLimit,
    check_urls,
    scheme_of,
)

SECRET = "plainSECRETword"
"""Letters only: apprise's own masking of secrets in its log lines leaves such a word whole."""


def test_good_urls_pass() -> None:
    assert (
        check_urls(
            [
                "json://127.0.0.1:8080/hook",
                "jsons://user:pass@example.com/hook",
                f"ntfy://{SECRET}@ntfy.example.com/carewatch",
                f"mailto://nurse:{SECRET}@example.com",
                "form://127.0.0.1/x",
                "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-100123",
                "https://discord.com/api/webhooks/123456/abcdefg",
            ]
        )
        == []
    )
    assert check_urls([]) == []


@pytest.mark.parametrize(
    ("url", "error"),
    [
        (f"ntfyy://{SECRET}@host/topic", "url 1: unknown scheme 'ntfyy' (not an apprise service)"),
        (f"tgram://{SECRET}/", "url 1: apprise cannot use this tgram:// URL"),
        ("json://", "url 1: apprise cannot use this json:// URL"),
        (f"{SECRET}", "url 1: is not an apprise URL (expected scheme://...)"),
        (f"https://example.com/{SECRET}", "url 1: is a plain https:// address"),
        (f" json://127.0.0.1/{SECRET}", "url 1: has leading or trailing spaces"),
        (f"json://127.0.0.1/{SECRET} json://127.0.0.1/b", "url 1: holds a space"),
        ("", "url 1: is empty"),
    ],
)
def test_bad_urls_are_named_by_position_never_by_content(
    url: str, error: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An AppriseChannel made earlier in the session silences apprise for good; lift that
    # here, where the checker must mute apprise's lines about the URL itself.
    monkeypatch.setattr(logging.getLogger("apprise"), "filters", [])
    caplog.set_level(logging.DEBUG)
    errors = check_urls([url])
    assert len(errors) == 1
    assert errors[0].startswith(error)
    assert SECRET not in errors[0]
    # Apprise logs an unusable URL whole; those lines are muted while we check.
    assert SECRET not in caplog.text


def test_unavailable_and_repeated_urls() -> None:
    errors = check_urls(["json://127.0.0.1/a", "dbus://", "json://127.0.0.1/a"])
    assert errors == [
        "url 2: dbus:// is not available on this system (a library it needs is missing)",
        "url 3: repeats url 1",
    ]


def test_muting_apprise_is_undone_after_the_check(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = logging.getLogger("apprise")
    monkeypatch.setattr(log, "filters", [])
    caplog.set_level(logging.DEBUG)
    check_urls(["tgram://nope/"])
    assert log.filters == []
    log.warning("still heard")
    assert "still heard" in caplog.text


def test_the_channel_silences_apprise(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = logging.getLogger("apprise")
    monkeypatch.setattr(log, "filters", [])
    caplog.set_level(logging.DEBUG)
    AppriseChannel(apprise_logs=True)
    log.warning("heard")
    AppriseChannel()
    AppriseChannel()
    log.error("silenced")
    assert "heard" in caplog.text
    assert "silenced" not in caplog.text
    assert len(log.filters) == 1


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("ntfy://tok@host/topic", "ntfy"),
        ("NTFYS://host/topic", "ntfys"),
        ("mailto://u:p@example.com", "mailto"),
        ("https://discord.com/api/webhooks/1/x", "https"),
        ("ntfyy://host/topic", "unknown"),
        ("no scheme at all", "unknown"),
        ("", "unknown"),
    ],
)
def test_scheme_labels_are_bounded(url: str, scheme: str) -> None:
    assert scheme_of(url) == scheme


class Recipient(BaseModel):
    urls: AppriseUrls


def test_apprise_urls_type_refuses_a_bad_entry_without_echoing_it() -> None:
    assert Recipient(urls=("json://127.0.0.1/a",)).urls == ("json://127.0.0.1/a",)
    with pytest.raises(ValidationError) as caught:
        Recipient(urls=("json://127.0.0.1/a", f"ntfyy://{SECRET}@h/t"))
    (error,) = caught.value.errors(include_input=False, include_url=False)
    assert error["loc"] == ("urls",)
    assert "url 2: unknown scheme 'ntfyy'" in error["msg"]
    assert SECRET not in error["msg"]
    with pytest.raises(ValidationError, match="at least 1"):
        Recipient(urls=())


def test_settings_defaults_and_limits() -> None:
    settings = NotifySettings()
    assert settings.limit == RateLimit(rate=5, period_s=600.0, burst=5, critical_burst=3)
    assert settings.retry_attempts == 5
    custom = NotifySettings.model_validate(
        {"rate": 2, "period_s": 60, "burst": 4, "critical_burst": 0, "timeout_s": 5}
    )
    assert custom.limit == RateLimit(rate=2, period_s=60.0, burst=4, critical_burst=0)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"rate": 0}, "rate"),
        ({"burst": 0}, "burst"),
        ({"critical_burst": -1}, "critical_burst"),
        ({"period_s": 0}, "period_s"),
        ({"retry_attempts": 0}, "retry_attempts"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"retry_min_s": 10, "retry_max_s": 5}, "retry_max_s is below retry_min_s"),
        ({"queue_size": 0}, "queue_size"),
        ({"rate_per_hour": 3}, "rate_per_hour"),
    ],
)
def test_settings_refuse_nonsense(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        NotifySettings.model_validate(fields)
