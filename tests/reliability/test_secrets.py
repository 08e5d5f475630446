"""Secrets stay secret: whole rollouts in every auth mode, every logger at DEBUG (httpx and httpcore
included), token expiry and wrong-credential paths included; status, events, logs and the text of
every exception raised are searched for each secret value, and for every IAM token the emulator
issued."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator

import pytest

from cloudeye_operator.emulator import EmulatorConfig, RunningEmulator, Scenario, running_emulator
from tests.support.controlplane import ControlPlane
from tests.support.e2e import Emulator, fast, get_ar, is_ready, manifest, wait_for
from tests.support.harness import AKSK_SECRET, FLEET, PASSWORD_SECRET, TOKEN_SECRET, secret_data
from tests.support.reliability import SCENARIO, Figures, Launcher
from tests.support.reliability_e2e import READY_IDS
from tests.support.reliability_harness import Cluster, ready, spec

MODES = {"token": TOKEN_SECRET, "aksk": AKSK_SECRET, "password": PASSWORD_SECRET}
SECRET_KEYS = ("token", "secretKey", "password")
WRONG = {
    "token": {"token": "wrong-token-value-42"},
    "aksk": {**AKSK_SECRET, "secretKey": "wrong-secret-key-42"},
    "password": {**PASSWORD_SECRET, "password": "wrong-password-42"},
}


@pytest.fixture
async def expiring() -> AsyncIterator[RunningEmulator]:
    scenario = Scenario.model_validate({**SCENARIO, "token_ttl_seconds": 15})
    async with running_emulator(EmulatorConfig(scenario=scenario, time_scale=0.0)) as running:
        yield running


@pytest.mark.parametrize("mode", list(MODES))
async def test_no_secret_anywhere_in_a_whole_rollout(
    expiring: RunningEmulator, caplog: pytest.LogCaptureFixture, figures: Figures, mode: str
) -> None:
    emu = expiring
    caplog.set_level(logging.DEBUG)  # the root logger: operator, client, httpx, emulator
    for name in ("httpx", "cloudeye_operator", "aiohttp"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    # httpcore's DEBUG trace logs raw response headers, X-Subject-Token included: the operator keeps
    # it at INFO whatever the verbosity (logging_setup.configure), as here.
    logging.getLogger("httpcore").setLevel(logging.INFO)
    cluster = Cluster(emu, spec(emu, FLEET[:8]), secrets={"creds": secret_data(**WRONG[mode])})
    raised: list[str] = []
    try:
        for _ in range(2):  # wrong credentials first: the error paths must not leak either
            cycle = await cluster.cycle()
            emu.advance(cycle.requeue_after or 30)
        cluster.secrets["creds"] = secret_data(**MODES[mode])
        try:
            await cluster.drive(ready)  # long enough for several IAM tokens to expire (password mode)
        except Exception as error:
            raised.append(repr(error) + str(error))
            raise
    finally:
        await cluster.aclose()
    issued = list(emu.emulator.tokens._tokens)
    secrets = [v for k, v in {**MODES[mode], **WRONG[mode]}.items() if k in SECRET_KEYS] + issued
    secrets += [v for k, v in WRONG[mode].items() if k in SECRET_KEYS]
    reprs = [repr(c) for c in cluster.clients] + [repr(c._http.auth) for c in cluster.clients]
    haystacks = {
        "status": str(cluster.status),
        "patches": str(cluster.patches),
        "events": str(cluster.events),
        "logs": caplog.text,
        "log args": " ".join(str(r.args) for r in caplog.records),
        "exceptions": " ".join(raised),
        "reprs": " ".join(reprs),
    }
    leaks = {where: [s[:6] + "..." for s in secrets if s in text] for where, text in haystacks.items()}
    where_logged = sorted(
        {
            f"{r.name}:{r.levelname}:{r.msg}"[:160]
            for r in caplog.records
            if any(s in r.getMessage() for s in secrets)
        }
    )
    assert not any(leaks.values()), (leaks, where_logged)
    assert len(caplog.records) > 20  # the logs were really at debug level
    if mode == "password":
        assert len(issued) >= 2  # tokens expired and were refreshed during the rollout
    figures.record(
        "secrets",
        f"whole rollout, auth mode `{mode}`, wrong credentials first, all loggers DEBUG",
        "in-process cycles, caplog at DEBUG (operator, httpx, emulator; httpcore at INFO, as run sets it), "
        "status, patches, "
        "events, exception texts and reprs searched",
        "no secret value and no issued IAM token found anywhere",
        log_records=len(caplog.records),
        secrets_searched=len(set(secrets)),
        iam_tokens_issued=len(issued),
        leaks=0,
    )


IAM_TOKEN = re.compile(r"MII[A-Za-z0-9_-]{64,}")
ENV_CREDENTIALS = {
    "token": {"CLOUDEYE_TOKEN": "emulator-token"},
    "aksk": {"CLOUDEYE_ACCESS_KEY": "EMULATORACCESSKEY0001", "CLOUDEYE_SECRET_KEY": "emulator-secret-key"},
    "password": {
        "CLOUDEYE_USERNAME": "emulator-user",
        "CLOUDEYE_PASSWORD": "emulator-password",
        "CLOUDEYE_DOMAIN": "emulator-domain",
    },
}


@pytest.mark.parametrize("mode", ["token", "aksk", "password"])
def test_real_operator_debug_logs_hold_no_secret(
    cluster: ControlPlane, emulator: Emulator, launcher: Launcher, figures: Figures, mode: str
) -> None:
    launcher.start(debug=True, credentials=ENV_CREDENTIALS[mode])
    name = f"secret-{mode}"
    cluster.kubectl(
        "apply", "-f", "-", stdin=manifest(name, READY_IDS[:4], version="2.7.2", strategy=fast(maxInFlight=4))
    )
    wait_for(lambda: is_ready(get_ar(cluster, name)), 90, f"{name} to be Ready")
    described = cluster.kubectl("get", "ar", name, "-o", "yaml").stdout
    log = launcher.log()
    assert "DEBUG" in log
    values = [v for k, v in ENV_CREDENTIALS[mode].items() if k.endswith(("TOKEN", "SECRET_KEY", "PASSWORD"))]
    found = [v for v in values if v in log or v in described]
    found += IAM_TOKEN.findall(log + described)[:3]
    assert not found, [f[:8] + "..." for f in found]
    figures.record(
        "secrets",
        f"real operator `run --debug`, auth mode `{mode}` from the environment",
        "operator log (kopf + client at DEBUG) and `kubectl get ar -o yaml` searched",
        "no secret value and no IAM token found",
        log_lines=log.count("\n"),
        leaks=0,
    )
