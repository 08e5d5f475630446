"""One settings model for every CLOUDEYE_ variable (config.py), checked by `run` before kopf starts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kopf
import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from cloudeye_operator import config, faulthooks, kube, logging_setup, metrics, run
from cloudeye_operator.config import OperatorSettings, SettingsError
from cloudeye_operator.emulator.defaults import ENV_PREFIX as EMULATOR_PREFIX

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CLOUDEYE_ variable of the test runner's, and nothing loaded yet."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("CLOUDEYE_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(config, "_current", None)


# variable, a good value, what it parses to, a bad value (None: any text is accepted), the rule named
CASES: list[tuple[str, str, Any, str | None, str]] = [
    ("CLOUDEYE_REGION", "cn-north-4", "cn-north-4", None, ""),
    ("CLOUDEYE_PROJECT_ID", "0123abcd", "0123abcd", None, ""),
    ("CLOUDEYE_ENDPOINT", "http://127.0.0.1:8700", "http://127.0.0.1:8700", None, ""),
    ("CLOUDEYE_IAM_ENDPOINT", "https://iam.example", "https://iam.example", None, ""),
    ("CLOUDEYE_ECS_ENDPOINT", "https://ecs.example", "https://ecs.example", None, ""),
    ("CLOUDEYE_CA_BUNDLE", "/etc/ca.pem", Path("/etc/ca.pem"), None, ""),
    ("CLOUDEYE_TOKEN", "tok-value", SecretStr("tok-value"), None, ""),
    ("CLOUDEYE_ACCESS_KEY", "AK0001", "AK0001", None, ""),
    ("CLOUDEYE_SECRET_KEY", "sk-value", SecretStr("sk-value"), None, ""),
    ("CLOUDEYE_USERNAME", "user", "user", None, ""),
    ("CLOUDEYE_PASSWORD", "pw-value", SecretStr("pw-value"), None, ""),
    ("CLOUDEYE_DOMAIN", "dom", "dom", None, ""),
    ("CLOUDEYE_CREDENTIALS_DIR", "/etc/cloudeye/credentials", Path("/etc/cloudeye/credentials"), None, ""),
    ("CLOUDEYE_CREATE_RATE", "2.5", 2.5, "-1", "greater than 0"),
    ("CLOUDEYE_LIST_RATE", "40", 40.0, "fast", "valid number"),
    ("CLOUDEYE_AGENT_STATUS_RATE", "4", 4.0, "-7", "greater than 0"),
    ("CLOUDEYE_SERVERS_RATE", "3", 3.0, "-3", "greater than 0"),
    ("CLOUDEYE_REQUEST_TIMEOUT", "12", 12.0, "-3", "greater than 0"),
    ("CLOUDEYE_POST_EVENTS", "false", False, "maybe", "valid boolean"),
    ("CLOUDEYE_PEERING_LIFETIME", "15", 15, "9", "greater than or equal to 10"),
    (
        "CLOUDEYE_LIVENESS_ENDPOINT",
        "http://0.0.0.0:8081/healthz",
        "http://0.0.0.0:8081/healthz",
        "ftp://h/x",
        "http://",
    ),
    ("CLOUDEYE_METRICS_PORT", "8080", 8080, "abc", "valid integer"),
    ("CLOUDEYE_STANDALONE", "no", False, "perhaps", "valid boolean"),
    ("CLOUDEYE_PEERING_NAME", "my-peering", "my-peering", "Bad_Name", "Kubernetes object name"),
    ("CLOUDEYE_PRIORITY", " 7 ", 7, "high", "an integer, or 'auto'"),
    ("CLOUDEYE_LOG_FORMAT", "json", "json", "xml", "'plain', 'full' or 'json'"),
]
MORE_BAD: list[tuple[str, str, str]] = [
    ("CLOUDEYE_METRICS_PORT", "70000", "less than or equal to 65535"),
    ("CLOUDEYE_METRICS_PORT", "-2", "greater than or equal to 0"),
    ("CLOUDEYE_PEERING_LIFETIME", "3601", "less than or equal to 3600"),
    ("CLOUDEYE_LIVENESS_ENDPOINT", "http://host:notaport/x", "http://"),
    ("CLOUDEYE_PEERING_NAME", "-leading-dash", "Kubernetes object name"),
]


def field_of(variable: str) -> str:
    return variable.removeprefix("CLOUDEYE_").lower()


def test_the_table_covers_every_setting() -> None:
    assert sorted(case[0] for case in CASES) == sorted(config.ENV_NAMES)


@pytest.mark.parametrize(("variable", "good", "parsed"), [case[:3] for case in CASES])
def test_a_good_value_is_read(monkeypatch: pytest.MonkeyPatch, variable: str, good: str, parsed: Any) -> None:
    monkeypatch.setenv(variable, good)
    assert getattr(config.load(), field_of(variable)) == parsed


@pytest.mark.parametrize(
    ("variable", "bad", "rule"),
    [(case[0], case[3], case[4]) for case in CASES if case[3] is not None] + MORE_BAD,
)
def test_a_bad_value_names_the_variable_and_the_rule_not_the_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, bad: str, rule: str
) -> None:
    monkeypatch.setenv(variable, bad)
    with pytest.raises(SettingsError) as caught:
        config.load()
    assert caught.value.problems == [f"invalid {variable}: {caught.value.problems[0].split(': ', 1)[1]}"]
    assert rule in str(caught.value)
    assert bad not in str(caught.value)


def test_defaults_without_any_variable() -> None:
    settings = config.load()
    assert (settings.create_rate, settings.list_rate, settings.request_timeout) == (5.0, 20.0, 30.0)
    assert (settings.post_events, settings.peering_lifetime) == (True, 60)
    assert (settings.liveness_endpoint, settings.metrics_port, settings.standalone) == (None, 0, True)
    assert (settings.peering_name, settings.priority, settings.log_format) == ("cloudeye-operator", 0, "full")
    assert settings.default_credentials() is None


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDEYE_METRICS_PORT", "")
    monkeypatch.setenv("CLOUDEYE_POST_EVENTS", "")
    settings = config.load()
    assert (settings.metrics_port, settings.post_events) == (0, True)


def test_priority_auto_stays_auto_until_run_resolves_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDEYE_PRIORITY", "auto")
    assert config.load().priority == "auto"


def test_an_unknown_variable_is_refused_with_the_likely_intended_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDEYE_CREAT_RATE", "3")
    with pytest.raises(SettingsError) as caught:
        config.load()
    assert str(caught.value) == "unknown setting CLOUDEYE_CREAT_RATE (did you mean CLOUDEYE_CREATE_RATE?)"


def test_every_unknown_variable_is_named_with_no_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDEYE_PASSWD", "hunter2-secret")
    monkeypatch.setenv("CLOUDEYE_ZZZ", "zzz-secret")
    monkeypatch.setenv("CLOUDEYE_FAULT_HOK", "after-create")
    monkeypatch.setenv("CLOUDEYE_CREATE_RATE", "-1")  # not reported while a name is unknown
    with pytest.raises(SettingsError) as caught:
        config.load()
    assert caught.value.problems == [
        "unknown setting CLOUDEYE_FAULT_HOK (did you mean CLOUDEYE_FAULT_HOOK?)",
        "unknown setting CLOUDEYE_PASSWD (did you mean CLOUDEYE_PASSWORD?)",
        "unknown setting CLOUDEYE_ZZZ",
    ]
    assert "secret" not in str(caught.value)
    assert "after-create" not in str(caught.value)


def test_names_compare_without_regard_to_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("cloudeye_create_rate", "2")
    assert config.load().create_rate == 2.0
    monkeypatch.setenv("cloudeye_creat_rate", "2")
    with pytest.raises(SettingsError, match="unknown setting cloudeye_creat_rate"):
        config.load()


def test_min_poll_seconds_is_gone_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "min_poll_seconds" not in OperatorSettings.model_fields
    monkeypatch.setenv("CLOUDEYE_MIN_POLL_SECONDS", "1")
    with pytest.raises(SettingsError, match=r"CLOUDEYE_MIN_POLL_SECONDS \(removed: it never had any effect"):
        config.load()


def test_variables_read_elsewhere_are_let_through(monkeypatch: pytest.MonkeyPatch) -> None:
    assert faulthooks.ENV in config.READ_ELSEWHERE
    assert EMULATOR_PREFIX + "*" in config.READ_ELSEWHERE
    for name in config.READ_ELSEWHERE:
        monkeypatch.setenv(name.replace("*", "PORT"), "1")
    config.load()


def test_every_cloudeye_name_in_the_repository_is_a_setting_or_read_elsewhere() -> None:
    """A new CLOUDEYE_ variable anywhere (script, test, manifest) must be one or the other, or `run`
    would refuse an environment that sets it."""
    found: set[str] = set()
    roots = [REPO / "operator" / "cloudeye_operator", REPO / "scripts", REPO / "deploy", REPO / "tests"]
    files = [REPO / "README.md", REPO / "RELIABILITY.md"] + [
        p for r in roots for p in r.rglob("*") if p.is_file()
    ]
    for path in files:
        if path == Path(__file__) or "__pycache__" in path.parts:
            continue
        # a name, not a prefix (CLOUDEYE_EMULATOR_*, CLOUDEYE_EMULATOR_<NAME>)
        found |= set(re.findall(r"CLOUDEYE_[A-Z0-9_]*[A-Z0-9](?![\w*<])", path.read_text(errors="ignore")))
    found -= {"CLOUDEYE_CREAT_RATE"}  # the misspelling the README quotes as an example
    unclassified = {
        name
        for name in found
        if name not in config.ENV_NAMES and not config.read_elsewhere(name) and name not in config.REMOVED
    }
    assert unclassified == set()


def test_the_deploy_manifests_set_only_known_settings() -> None:
    names = {
        name
        for path in (REPO / "deploy").rglob("*.yaml")
        for name in re.findall(r"name:\s*(CLOUDEYE_\w+)", path.read_text())
    }
    assert names
    assert names <= set(config.ENV_NAMES)


def test_no_secret_value_in_any_error_text(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {
        "CLOUDEYE_TOKEN": "tok-SECRET-1",
        "CLOUDEYE_SECRET_KEY": "sk-SECRET-2",
        "CLOUDEYE_PASSWORD": "pw-SECRET-3",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    for variable, _, _, bad, _ in CASES:
        if bad is None:
            continue
        monkeypatch.setenv(variable, bad)
    with pytest.raises(SettingsError) as caught:
        config.load()
    assert len(caught.value.problems) == sum(case[3] is not None for case in CASES)
    text = str(caught.value) + repr(caught.value)
    assert "SECRET" not in text
    for _, _, _, bad, _ in CASES:
        assert bad is None or bad not in text


def test_a_command_line_value_wins_over_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDEYE_METRICS_PORT", "1234")
    monkeypatch.setenv("CLOUDEYE_LOG_FORMAT", "json")
    settings = config.load(metrics_port=5678, log_format=None)
    assert (settings.metrics_port, settings.log_format) == (5678, "json")
    assert config.current() is settings


def test_an_invalid_command_line_value_names_the_option() -> None:
    with pytest.raises(SettingsError, match="invalid --metrics-port: Input should be less than"):
        config.load(metrics_port=70000)


def test_current_loads_when_run_did_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDEYE_REGION", "cn-south-1")
    assert config.current().region == "cn-south-1"


class KopfStarted(AssertionError):
    pass


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """`run` up to kopf.operator, recording what it was given; nothing real is started."""
    seen: dict[str, Any] = {}

    async def operator(**kwargs: Any) -> None:
        seen["kopf"] = kwargs

    monkeypatch.setattr(kopf, "operator", operator)
    monkeypatch.setattr(metrics, "serve", lambda port: seen.setdefault("metrics_port", port))
    monkeypatch.setattr(metrics, "register_kopf_handlers", lambda: None)
    monkeypatch.setattr(logging_setup, "configure", lambda fmt, **_: seen.setdefault("log_format", fmt))
    monkeypatch.setattr(kube, "ensure_peering_object", lambda name, namespaces: [])
    return seen


def test_run_exits_2_before_kopf_starts_on_an_unknown_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    async def operator(**_: Any) -> None:
        raise KopfStarted("kopf.operator was called")

    monkeypatch.setattr(kopf, "operator", operator)
    monkeypatch.setenv("CLOUDEYE_CREAT_RATE", "3")
    result = CliRunner().invoke(run.run_command, [])
    assert result.exit_code == 2, result.output
    assert "unknown setting CLOUDEYE_CREAT_RATE (did you mean CLOUDEYE_CREATE_RATE?)" in result.output
    assert not isinstance(result.exception, KopfStarted)


def test_run_exits_2_before_kopf_starts_on_a_bad_value(monkeypatch: pytest.MonkeyPatch) -> None:
    async def operator(**_: Any) -> None:
        raise KopfStarted("kopf.operator was called")

    monkeypatch.setattr(kopf, "operator", operator)
    monkeypatch.setenv("CLOUDEYE_METRICS_PORT", "abc")
    monkeypatch.setenv("CLOUDEYE_TOKEN", "tok-SECRET")
    result = CliRunner().invoke(run.run_command, [])
    assert result.exit_code == 2, result.output
    assert "invalid CLOUDEYE_METRICS_PORT: Input should be a valid integer" in result.output
    assert "abc" not in result.output
    assert "SECRET" not in result.output


def test_run_takes_its_options_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, started: dict[str, Any]
) -> None:
    for name, value in {
        "CLOUDEYE_LIVENESS_ENDPOINT": "http://0.0.0.0:8081/healthz",
        "CLOUDEYE_METRICS_PORT": "8080",
        "CLOUDEYE_STANDALONE": "false",
        "CLOUDEYE_PEERING_NAME": "env-peering",
        "CLOUDEYE_PRIORITY": "auto",
        "CLOUDEYE_LOG_FORMAT": "json",
        "HOSTNAME": "cloudeye-operator-6f7c9d8b5-2xkqp",
    }.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(run.run_command, [])
    assert result.exit_code == 0, result.output
    given = started["kopf"]
    assert given["liveness_endpoint"] == "http://0.0.0.0:8081/healthz"
    assert (given["standalone"], given["peering_name"]) == (False, "env-peering")
    assert given["priority"] == run.auto_priority("cloudeye-operator-6f7c9d8b5-2xkqp")
    assert (started["metrics_port"], started["log_format"]) == (8080, "json")
    assert given["settings"].peering.lifetime == 60


def test_run_options_override_the_environment(
    monkeypatch: pytest.MonkeyPatch, started: dict[str, Any]
) -> None:
    for name, value in {
        "CLOUDEYE_LIVENESS_ENDPOINT": "http://0.0.0.0:8081/healthz",
        "CLOUDEYE_METRICS_PORT": "8080",
        "CLOUDEYE_STANDALONE": "true",
        "CLOUDEYE_PEERING_NAME": "env-peering",
        "CLOUDEYE_PRIORITY": "5",
        "CLOUDEYE_LOG_FORMAT": "json",
    }.items():
        monkeypatch.setenv(name, value)
    args = [
        "--liveness=http://127.0.0.1:9000/live",
        "--metrics-port=9090",
        "--peering",
        "--peering-name=cli-peering",
        "--priority=42",
        "--log-format=plain",
    ]
    result = CliRunner().invoke(run.run_command, args)
    assert result.exit_code == 0, result.output
    given = started["kopf"]
    assert given["liveness_endpoint"] == "http://127.0.0.1:9000/live"
    assert (given["standalone"], given["peering_name"], given["priority"]) == (False, "cli-peering", 42)
    assert (started["metrics_port"], started["log_format"]) == (9090, "plain")
    assert config.current().metrics_port == 9090  # the object the handlers get has the CLI's values


def test_run_defaults(started: dict[str, Any]) -> None:
    result = CliRunner().invoke(run.run_command, [])
    assert result.exit_code == 0, result.output
    given = started["kopf"]
    assert (given["liveness_endpoint"], given["standalone"], given["priority"]) == (None, True, 0)
    assert given["peering_name"] is None  # standalone: no peering object
    assert (started["metrics_port"], started["log_format"]) == (0, "full")


def test_run_refuses_a_bad_option_like_its_variable() -> None:
    result = CliRunner().invoke(run.run_command, ["--peering-name", "Bad_Name"])
    assert result.exit_code == 2
    assert "Invalid value for '--peering-name': a Kubernetes object name" in result.output


def readme_rows() -> list[list[str]]:
    text = (REPO / "README.md").read_text()
    section = text.split("### Running the operator", 1)[1].split("\n## ", 1)[0]
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("| `CLOUDEYE_")
    ]


def test_the_readme_table_lists_every_setting_once_with_its_option() -> None:
    rows = readme_rows()
    assert [row[0].strip("`") for row in rows] == list(config.ENV_NAMES)
    for row in rows:
        field = field_of(row[0].strip("`"))
        option = config.RUN_OPTIONS.get(field, "")
        assert row[1].replace("` / `", "/").strip("`") == option, row
        assert all(row[2:4]), row  # a default and a rule
