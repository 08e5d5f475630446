"""ClientPool: one client per (target, credentials), closed only when no rollout uses it any more.

Before: a rollout whose credentials differed from another's for the same project closed that
other's client as if its Secret had been rotated ("Cannot send a request, as the client has been
closed"), so two rollouts with different Secrets for one project could not run at once.
"""

from __future__ import annotations

from pydantic import SecretStr

from cloudeye_operator.config import OperatorSettings
from cloudeye_operator.credentials import TokenCredentials
from cloudeye_operator.sessions import ClientPool, CloudTarget

TARGET = CloudTarget(region="cn-north-4", project_id="0123456789abcdef", endpoint="http://127.0.0.1:9")


def token(value: str) -> TokenCredentials:
    return TokenCredentials(token=SecretStr(value))


async def test_rollouts_with_different_credentials_for_one_project_keep_their_clients() -> None:
    pool = ClientPool(OperatorSettings())
    a = await pool.get(TARGET, token("a"), "ns/a")
    b = await pool.get(TARGET, token("b"), "ns/b")
    assert a is not b
    assert await pool.get(TARGET, token("a"), "ns/a") is a  # b's arrival closed nothing
    assert not a.is_closed
    assert not b.is_closed
    await pool.aclose()


async def test_a_rotation_closes_the_old_client_once_nobody_uses_it() -> None:
    pool = ClientPool(OperatorSettings())
    old = await pool.get(TARGET, token("old"), "ns/a")
    assert await pool.get(TARGET, token("old"), "ns/b") is old  # shared
    new = await pool.get(TARGET, token("new"), "ns/a")  # a's Secret rotated; b still calls with old
    assert new is not old
    assert not old.is_closed
    rotated = await pool.get(TARGET, token("new"), "ns/b")  # b's turn: nobody uses old any more
    assert rotated is new
    assert old.is_closed
    await pool.aclose()


async def test_release_closes_only_unused_clients() -> None:
    pool = ClientPool(OperatorSettings())
    shared = await pool.get(TARGET, token("t"), "ns/a")
    await pool.get(TARGET, token("t"), "ns/b")
    pool.release("ns/a")
    assert not shared.is_closed
    pool.release("ns/b")
    await pool.aclose()  # waits for the background close
    assert shared.is_closed
