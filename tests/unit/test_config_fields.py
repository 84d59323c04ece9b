"""The parsers and checks every setting is declared with: what text they take, what they refuse."""

from __future__ import annotations

import pytest

from agentbus.config import _fields as f


@pytest.mark.parametrize(("raw", "value"), [("3.5", 3.5), ("1", 1.0), ("-2", -2.0), ("1e3", 1000.0)])
def test_float_reads_numbers(raw: str, value: float) -> None:
    assert f._float(raw) == value


@pytest.mark.parametrize("raw", ["ten", "5s", "inf", "nan", "-inf", "1e"])
def test_float_refuses_words_units_and_non_finite_numbers(raw: str) -> None:
    with pytest.raises(ValueError, match="must be a"):
        f._float(raw)


def test_int_reads_whole_numbers_as_the_settings_always_have() -> None:
    assert f._int("64") == 64 and isinstance(f._int("64"), int)
    assert f._int("1e3") == 1000
    assert f._int("2.5") == 2
    with pytest.raises(ValueError):
        f._int("lots")


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("1", True), ("YES", True), ("on", True)])
def test_bool_reads_yes_words(raw: str, value: bool) -> None:
    assert f._bool(raw) is value


@pytest.mark.parametrize("raw", ["false", "0", "no", "Off"])
def test_bool_reads_no_words(raw: str) -> None:
    assert f._bool(raw) is False


def test_bool_refuses_anything_else_rather_than_guess() -> None:
    with pytest.raises(ValueError, match="must be one of"):
        f._bool("maybe")


@pytest.mark.parametrize(
    ("raw", "seconds"), [("30d", 30 * 86_400.0), ("12h", 43_200.0), ("0", 0.0), ("off", 0.0), ("never", 0.0)]
)
def test_age_reads_ages_and_off(raw: str, seconds: float) -> None:
    assert f._age(raw) == seconds


def test_age_refuses_prose() -> None:
    with pytest.raises(ValueError):
        f._age("30 days")


@pytest.mark.parametrize(
    ("raw", "size"),
    [
        ("805306368", 805_306_368),
        ("768MiB", 768 << 20),
        ("768M", 768 << 20),
        ("1GB", 1_000_000_000),
        ("0.75GiB", 3 << 28),
        ("64k", 64 << 10),
        ("0", 0),
    ],
)
def test_size_reads_bytes_with_units(raw: str, size: int) -> None:
    assert f._size(raw) == size


@pytest.mark.parametrize("raw", ["lots", "12XB", "-1GB", "infGB"])
def test_size_refuses_what_is_not_a_size(raw: str) -> None:
    with pytest.raises(ValueError, match="size"):
        f._size(raw)


def test_cidrs_are_a_checked_comma_separated_list() -> None:
    assert f._cidrs(" 10.0.0.0/8, 172.16.0.1 ,,") == ("10.0.0.0/8", "172.16.0.1")
    assert f._cidrs("fd00::/8") == ("fd00::/8",)
    with pytest.raises(ValueError, match="not an IP address"):
        f._cidrs("10.0.0.0/8, example.com")


def test_lower_and_str_keep_text() -> None:
    assert f._lower(" INFO ") == "info"
    assert f._str("Mixed Case") == "Mixed Case"


def test_range_checks_say_what_is_wrong_or_nothing() -> None:
    assert f.at_least(1)(1) is None and f.at_least(1)(0) == "must be at least 1, got 0"
    assert f.above(0)(0.1) is None and "above 0" in (f.above(0)(0) or "")
    assert f.between(0, 65535)(65535) is None and "from 0 to 65535" in (f.between(0, 65535)(70000) or "")
    assert f.one_of("text", "json")("json") is None and "text, json" in (f.one_of("text", "json")("xml") or "")


@pytest.mark.parametrize("value", ["50/s:100", "600/m:100", "1/h", "0.01/s:3"])
def test_rate_check_takes_what_the_rate_limiter_takes(value: str) -> None:
    assert f.rate(value) is None


@pytest.mark.parametrize("value", ["fast", "50/d:100", "0/s:1", "50/s:x"])
def test_rate_check_refuses_what_the_rate_limiter_would_fail_on(value: str) -> None:
    assert "must be a rate" in (f.rate(value) or "")


def test_url_check_wants_one_of_its_schemes_and_never_echoes_a_password() -> None:
    check = f.url("postgresql", "sqlite")
    assert check("postgresql://u:pw@db:5432/ab") is None
    assert check("sqlite:///.agentbus/agentbus.db") is None
    problem = check("mysql://u:hunter2@db/ab") or ""
    assert "postgresql://" in problem and "hunter2" not in problem
    assert check("db:5432") is not None


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:hunter2@db:5432/ab", "postgresql://u:***@db:5432/ab"),
        ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_mask_url_hides_the_password_only(url: str, masked: str) -> None:
    assert f.mask_url(url) == masked


@pytest.mark.parametrize("value", ["", "otlp", "console", "file:/tmp/traces"])
def test_tracing_check_takes_the_exporters_there_are(value: str) -> None:
    assert f.tracing(value) is None


@pytest.mark.parametrize("value", ["jaeger", "file:", "OTLP"])
def test_tracing_check_refuses_others_at_start_not_at_first_span(value: str) -> None:
    assert "otlp, console or file:DIR" in (f.tracing(value) or "")
