"""Running the emulator: in-process for tests (async or in a thread) and as a long-lived server.

    async with running_emulator(EmulatorConfig(scenario=load_demo_scenario())) as emu:
        emu.url            # http://127.0.0.1:<free port>
        emu.advance(10)    # move the emulator clock
        emu.state          # the EmulatorState (tasks, servers)

Real HTTP over loopback; port 0 picks a free port.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from aiohttp import web

from cloudeye_operator.cloudeye.models import MAX_TOKEN_LENGTH
from cloudeye_operator.emulator import defaults
from cloudeye_operator.emulator.auth import Account
from cloudeye_operator.emulator.faults import Faults
from cloudeye_operator.emulator.runtime import Emulator, EmulatorConfig, ResponseShape
from cloudeye_operator.emulator.server import create_app
from cloudeye_operator.emulator.state import EmulatorState

SHUTDOWN_TIMEOUT_SECONDS = 2.0
MAX_HEADER_FIELD_SIZE = 2 * MAX_TOKEN_LENGTH


class RunningEmulator:
    """A live emulator: its base URL and handles to steer it from the same process."""

    def __init__(self, emulator: Emulator, url: str) -> None:
        self.emulator = emulator
        self.url = url

    @property
    def credentials(self) -> Account:
        return self.emulator.credentials

    @property
    def project_id(self) -> str:
        return self.emulator.credentials.project_id

    @property
    def state(self) -> EmulatorState:
        """The current state (``reset`` replaces it, so read it through this property)."""
        return self.emulator.state

    def now(self) -> float:
        return self.emulator.now()

    def advance(self, seconds: float) -> float:
        """Move the emulator clock forward; returns the new time (epoch seconds)."""
        return self.emulator.advance(seconds)

    def set_faults(self, faults: Faults | dict[str, Any]) -> None:
        self.emulator.set_faults(faults if isinstance(faults, Faults) else Faults.model_validate(faults))

    def set_response_shape(self, shape: ResponseShape) -> None:
        """ "object" ({"invocations": [...]}, the default) or "array" (the page example's bare array)."""
        self.emulator.response_shape = shape

    def stats(self) -> dict[str, dict[str, int]]:
        return self.emulator.stats.snapshot()

    def tasks(self) -> list[dict[str, Any]]:
        return self.emulator.state.dump_tasks(self.emulator.now())

    def servers(self) -> list[dict[str, Any]]:
        return self.emulator.state.dump_servers(self.emulator.now())


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextlib.asynccontextmanager
async def running_emulator(
    config: EmulatorConfig | None = None,
    host: str = defaults.DEFAULT_HOST,
    port: int = 0,
) -> AsyncIterator[RunningEmulator]:
    """Serve the emulator on host:port (0 = a free port) for the duration of the block."""
    emulator = Emulator(config or EmulatorConfig())
    runner = web.AppRunner(
        create_app(emulator),
        access_log=None,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
        # Tokens may be 16384 characters (the pages' X-Auth-Token maximum); aiohttp's default is 8190.
        max_field_size=MAX_HEADER_FIELD_SIZE,
        max_line_size=MAX_HEADER_FIELD_SIZE,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = int(runner.addresses[0][1])
        yield RunningEmulator(emulator, _url(host, bound_port))
    finally:
        await runner.cleanup()


async def serve(
    config: EmulatorConfig,
    host: str = defaults.DEFAULT_HOST,
    port: int = defaults.DEFAULT_PORT,
    *,
    on_ready: Callable[[RunningEmulator], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until ``stop`` is set or SIGTERM/SIGINT arrives (signals: main thread only)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
    try:
        async with running_emulator(config, host, port) as running:
            if on_ready is not None:
                on_ready(running)
            await stop.wait()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


@contextlib.contextmanager
def threaded_emulator(
    config: EmulatorConfig | None = None,
    host: str = defaults.DEFAULT_HOST,
    port: int = 0,
    *,
    start_timeout: float = 10.0,
) -> Iterator[RunningEmulator]:
    """The emulator on its own event loop in a background thread, for synchronous callers.

    ``advance`` is safe from the caller's thread; other steering (faults, reset) should happen
    while no request is in flight, or go through the /_emulator endpoints.
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="cloudeye-emulator", daemon=True)
    thread.start()
    context = running_emulator(config, host, port)
    try:
        running = asyncio.run_coroutine_threadsafe(context.__aenter__(), loop).result(start_timeout)
        try:
            yield running
        finally:
            asyncio.run_coroutine_threadsafe(context.__aexit__(None, None, None), loop).result(
                SHUTDOWN_TIMEOUT_SECONDS + 5
            )
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
