"""Async client for the Cloud Eye agent endpoints: the two agent-invocation calls and ListAgentStatus.

Small pieces: typed models (models.py) validated before anything is sent, an `httpx.Auth` (auth.py),
one rate limiter per endpoint, bounded retries with backoff and jitter where a retry is safe, and
errors that carry what the cloud said (errors.py). A batch-create is never resent after a failure
that may have happened after the cloud applied it: the caller is told, and settles it by listing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, TypeVar

import httpx
from aiolimiter import AsyncLimiter
from pydantic import ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from cloudeye_operator.cloudeye.errors import (
    AmbiguousCreateError,
    ApiError,
    BatchProgress,
    CloudEyeError,
    RequestValidationError,
    TransportError,
)
from cloudeye_operator.cloudeye.models import (
    MAX_IDS_PER_AGENT_QUERY,
    MAX_IDS_PER_CREATE,
    MAX_PAGE_LIMIT,
    PROJECT_ID_PATTERN,
    AgentStatusInfo,
    AgentStatusQuery,
    BatchCreateInvocationInfo,
    BatchCreateRequest,
    BatchCreateResponse,
    ErrorBody,
    ExtensionStatus,
    InstanceType,
    InvocationTarget,
    InvocationType,
    ListAgentStatusResponse,
    ListedTask,
    ListInvocationsQuery,
    Origin,
    UniAgentStatus,
    VersionType,
    parse_list_page,
)
from cloudeye_operator.cloudeye.regions import ces_endpoint, check_region, ecs_endpoint
from cloudeye_operator.cloudeye.servers import (
    MAX_SERVERS_PER_PAGE,
    ListedServer,
    ServerQuery,
    ServersPage,
    select,
)

log = logging.getLogger(__name__)

REQUEST_ID_HEADERS: Final = ("X-Request-Id", "X-Openstack-Request-Id")
DEFAULT_TIMEOUT: Final = httpx.Timeout(30.0, connect=5.0, pool=10.0)
_MAX_ERROR_BODY_BYTES: Final = 4096
CREATE_NOT_APPLIED_STATUSES: Final = frozenset({429, 503})
"""Answers to a batch-create that say it was not processed, so it may be sent again. Any other 5xx
(500, 502, 504, ...) may follow a partial or complete apply: reported as ambiguous, never resent."""
T = TypeVar("T")


class Endpoint(StrEnum):
    BATCH_CREATE = "batch_create"
    LIST = "list"
    AGENT_STATUS = "agent_status"
    """POST .../agent-status/batch-query (ListAgentStatus)."""
    SERVERS = "servers"
    """ECS GET /v1/{project_id}/cloudservers/detail (ListServersDetails), for selectors."""


DEFAULT_REQUESTS_PER_SECOND: Final[dict[Endpoint, float]] = {
    Endpoint.BATCH_CREATE: 5.0,
    Endpoint.LIST: 20.0,
    Endpoint.AGENT_STATUS: 10.0,
    Endpoint.SERVERS: 10.0,
}


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Where and how to talk to Cloud Eye. `endpoint` overrides the one derived from `region`;
    `ecs_endpoint` the ECS one (else `endpoint` when set: an emulator or a gateway serves both)."""

    project_id: str
    region: str | None = None
    endpoint: str | None = None
    ecs_endpoint: str | None = None
    timeout: httpx.Timeout = field(default_factory=lambda: DEFAULT_TIMEOUT)
    requests_per_second: dict[Endpoint, float] = field(
        default_factory=lambda: dict(DEFAULT_REQUESTS_PER_SECOND)
    )
    """One limiter per endpoint; an endpoint left out gets its DEFAULT_REQUESTS_PER_SECOND rate."""
    max_attempts: int = 5
    """Attempts per request, first one included, for failures that are safe to retry."""
    backoff_initial: float = 0.5
    backoff_max: float = 20.0
    verify: bool | str = True
    """TLS verification: True, or the path of a CA bundle. Never False outside tests of the emulator."""
    trust_env: bool = True
    """Proxies (HTTPS_PROXY, NO_PROXY, ...) from the environment."""

    def base_url(self) -> str:
        if self.region is not None:
            check_region(self.region)
        if self.endpoint:
            return self.endpoint.rstrip("/")
        if self.region is None:
            raise RequestValidationError("region", "either a region or an endpoint is required")
        return ces_endpoint(self.region)

    def ecs_base_url(self) -> str:
        if self.ecs_endpoint:
            return self.ecs_endpoint.rstrip("/")
        if self.endpoint:
            return self.endpoint.rstrip("/")
        if self.region is None:
            raise RequestValidationError("region", "either a region or an endpoint is required")
        return ecs_endpoint(check_region(self.region))


@dataclass(slots=True)
class ClientStats:
    """What the client sent, for tests, benchmarks and metrics."""

    requests: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    responses: Counter[tuple[str, int]] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class ListResult:
    invocations: list[ListedTask]
    count: int
    """The total the cloud reported on the last page."""
    calls: int


ResponseHook = Callable[[Endpoint, int, float], None]


class _Retryable(Exception):
    """Internal: a failure after which the same request may be sent again."""

    def __init__(self, error: CloudEyeError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


def _validation_error(exc: ValidationError) -> RequestValidationError:
    first = exc.errors()[0]
    field_name = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"])
    return RequestValidationError(field_name.lstrip(".") or "request", first["msg"])


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _api_error(response: httpx.Response, endpoint: Endpoint) -> ApiError:
    code: str | None = None
    message: str | None = None
    try:
        body = ErrorBody.model_validate_json(response.content[:_MAX_ERROR_BODY_BYTES])
        code, message = body.error_code, body.error_msg
    except ValidationError:
        message = f"unreadable error body ({len(response.content)} bytes)"
    request_id = next((response.headers[h] for h in REQUEST_ID_HEADERS if h in response.headers), None)
    return ApiError(response.status_code, code, message, request_id, endpoint.value)


class CloudEyeClient:
    """Talks to `/v3/{project_id}/agent-invocations[...]` and `/v3/{project_id}/agent-status/batch-query`.
    Use as an async context manager."""

    def __init__(
        self,
        settings: ClientSettings,
        auth: httpx.Auth,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        on_response: ResponseHook | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        if not PROJECT_ID_PATTERN.match(settings.project_id):
            raise RequestValidationError("project_id", "must match ^[a-z0-9]{1,64}$")
        self.settings = settings
        self.stats = ClientStats()
        self._on_response = on_response
        self._sleep = sleep or asyncio.sleep
        rates = {**DEFAULT_REQUESTS_PER_SECOND, **settings.requests_per_second}
        self._limiters = {endpoint: AsyncLimiter(max(rate, 0.001), 1.0) for endpoint, rate in rates.items()}
        self._http = httpx.AsyncClient(
            base_url=settings.base_url(),
            auth=auth,
            timeout=settings.timeout,
            verify=settings.verify,
            trust_env=settings.trust_env,
            transport=transport,
            headers={"User-Agent": "cloudeye-operator", "Accept": "application/json"},
        )

    async def __aenter__(self) -> CloudEyeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def is_closed(self) -> bool:
        return self._http.is_closed

    # --- batch-create ---------------------------------------------------------------------------

    async def batch_create(
        self,
        invocation_type: InvocationType,
        *,
        instance_ids: Sequence[str] | None = None,
        invocation_ids: Sequence[str] | None = None,
        version_type: VersionType | None = None,
        version: str | None = None,
        origin: Origin | None = None,
        invocation_target: InvocationTarget = InvocationTarget.TELESCOPE,
    ) -> list[BatchCreateInvocationInfo]:
        """Create tasks for any number of servers (INSTALL/UPDATE) or earlier tasks (ROLLBACK/RETRY).

        Sent as ⌈n/100⌉ calls; per-item refusals (`ret_status: error`) are results, not exceptions.
        Every chunk is validated before the first is sent. If a call fails, the error's `progress`
        says which items were answered, which failed and which were never sent.
        """
        ids = list((instance_ids if invocation_type.targets_instances else invocation_ids) or [])
        ids_field = "instance_ids" if invocation_type.targets_instances else "invocation_ids"
        duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
        if (instance_ids and not invocation_type.targets_instances) or (
            invocation_ids and invocation_type.targets_instances
        ):
            other = "invocation_ids" if invocation_type.targets_instances else "instance_ids"
            raise RequestValidationError(other, f"is not allowed when invocation_type is {invocation_type}")
        if not ids:
            raise RequestValidationError(ids_field, f"at least one id is required for {invocation_type}")
        if duplicates:
            raise RequestValidationError(ids_field, f"duplicate ids: {', '.join(duplicates[:5])}")
        chunks = [ids[i : i + MAX_IDS_PER_CREATE] for i in range(0, len(ids), MAX_IDS_PER_CREATE)]
        requests = []
        for chunk in chunks:
            try:
                requests.append(
                    BatchCreateRequest(
                        invocation_type=invocation_type,
                        invocation_target=invocation_target,
                        version_type=version_type,
                        version=version,
                        origin=origin,
                        **{ids_field: chunk},
                    )
                )
            except ValidationError as exc:
                raise _validation_error(exc) from None

        results: list[BatchCreateInvocationInfo] = []
        for index, request in enumerate(requests):
            try:
                results.extend(await self._create_once(request))
            except CloudEyeError as exc:
                exc.progress = BatchProgress(
                    completed=results,
                    failed_ids=chunks[index],
                    unsent_ids=[i for chunk in chunks[index + 1 :] for i in chunk],
                )
                raise
        return results

    async def _create_once(self, request: BatchCreateRequest) -> list[BatchCreateInvocationInfo]:
        body = request.to_wire()
        path = f"/v3/{self.settings.project_id}/agent-invocations/batch-create"
        ids = request.instance_ids or request.invocation_ids or []

        async def attempt() -> list[BatchCreateInvocationInfo]:
            try:
                response = await self._send(Endpoint.BATCH_CREATE, "POST", path, json=body)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # Never reached the cloud: safe to send again.
                raise _Retryable(TransportError(f"batch_create: {type(exc).__name__}")) from None
            except httpx.TransportError as exc:
                # Sent, and no answer: it may or may not have been applied.
                raise self._ambiguous(request, ids, type(exc).__name__) from None
            if response.status_code >= 500 and response.status_code not in CREATE_NOT_APPLIED_STATUSES:
                # An internal error or a gateway giving up: the backend may have applied the create.
                raise self._ambiguous(request, ids, f"HTTP {response.status_code}") from None
            self._raise_for_status(response, Endpoint.BATCH_CREATE)
            try:
                return BatchCreateResponse.model_validate_json(response.content).invocations
            except ValidationError:
                raise self._ambiguous(request, ids, "unreadable 2xx response body") from None

        return await self._with_retries(Endpoint.BATCH_CREATE, attempt)

    @staticmethod
    def _ambiguous(request: BatchCreateRequest, ids: list[str], cause: str) -> AmbiguousCreateError:
        if request.invocation_type.targets_instances:
            return AmbiguousCreateError(list(ids), [], cause)
        return AmbiguousCreateError([], list(ids), cause)

    # --- list -----------------------------------------------------------------------------------

    async def iter_invocations(
        self,
        *,
        instance_id: str | None = None,
        instance_type: InstanceType | None = None,
        invocation_id: str | None = None,
        invocation_type: InvocationType | None = None,
        invocation_target: InvocationTarget | None = None,
        page_size: int = MAX_PAGE_LIMIT,
    ) -> AsyncIterator[tuple[list[ListedTask], int]]:
        """Yield (page, count) for every page of the listing, following offset/limit until `count`.

        Pages are validated as `ListInvocationsResponse` would be, into lean `ListedTask` records."""
        try:
            query = ListInvocationsQuery(
                instance_id=instance_id,
                instance_type=instance_type,
                invocation_id=invocation_id,
                invocation_type=invocation_type,
                invocation_target=invocation_target,
                limit=page_size,
            )
        except ValidationError as exc:
            raise _validation_error(exc) from None
        path = f"/v3/{self.settings.project_id}/agent-invocations"
        offset = 0
        while True:
            params = query.model_copy(update={"offset": offset}).to_params()

            page = await self._read(Endpoint.LIST, "GET", path, parse_list_page, "list", params=params)
            yield page.invocations, page.count
            offset += len(page.invocations)
            if not page.invocations or offset >= page.count:
                return

    async def list_invocations(
        self,
        *,
        instance_id: str | None = None,
        instance_type: InstanceType | None = None,
        invocation_id: str | None = None,
        invocation_type: InvocationType | None = None,
        invocation_target: InvocationTarget | None = None,
        page_size: int = MAX_PAGE_LIMIT,
    ) -> ListResult:
        """Every task matching the filters, all pages. Tasks created while paging may shift the
        pages (the cloud lists newest first), so items are de-duplicated by invocation id."""
        seen: dict[str, ListedTask] = {}
        count = calls = 0
        async for page, total in self.iter_invocations(
            instance_id=instance_id,
            instance_type=instance_type,
            invocation_id=invocation_id,
            invocation_type=invocation_type,
            invocation_target=invocation_target,
            page_size=page_size,
        ):
            calls += 1
            count = total
            for item in page:
                seen.setdefault(item.invocation_id, item)
        return ListResult(list(seen.values()), count, calls)

    # --- agent status -----------------------------------------------------------------------------

    async def list_agent_status(
        self,
        instance_ids: Sequence[str],
        *,
        uniagent_status: UniAgentStatus | None = None,
        extension_name: str | None = None,
        extension_status: ExtensionStatus | None = None,
    ) -> list[AgentStatusInfo]:
        """Each server's uniagent and extension (telescope) status and version (ListAgentStatus).

        Ids are de-duplicated (first occurrence kept) and sent as ⌈n/2000⌉ calls, every chunk validated
        before the first is sent; no ids, no call. A read: retried like a list page. The cloud leaves
        out servers it does not know and those the filters exclude, so the answer may be shorter."""
        ids = list(dict.fromkeys(instance_ids))
        queries = []
        for start in range(0, len(ids), MAX_IDS_PER_AGENT_QUERY):
            try:
                queries.append(
                    AgentStatusQuery.model_validate(
                        {
                            "instance_ids": ids[start : start + MAX_IDS_PER_AGENT_QUERY],
                            "uniagent_status": uniagent_status,
                            "extension_name": extension_name,
                            "extension_status": extension_status,
                        }
                    )
                )
            except ValidationError as exc:
                first = exc.errors()[0]
                match first["loc"]:
                    case ("instance_ids", int(position)):  # the caller's position, not the chunk's
                        field_name = f"instance_ids[{start + position}]"
                        raise RequestValidationError(field_name, first["msg"]) from None
                raise _validation_error(exc) from None
        results: list[AgentStatusInfo] = []
        for query in queries:
            results.extend(await self._agent_status_once(query))
        return results

    async def _agent_status_once(self, query: AgentStatusQuery) -> list[AgentStatusInfo]:
        body = query.to_wire()
        path = f"/v3/{self.settings.project_id}/agent-status/batch-query"

        answer = await self._read(
            Endpoint.AGENT_STATUS,
            "POST",
            path,
            ListAgentStatusResponse.model_validate_json,
            "agent-status",
            json=body,
        )
        return answer.agent_status

    # --- ECS servers (selectors) ----------------------------------------------------------------

    async def iter_servers(
        self, query: ServerQuery, *, page_size: int = MAX_SERVERS_PER_PAGE
    ) -> AsyncIterator[tuple[list[ListedServer], int]]:
        """Yield (page, count) for every page of ECS ListServersDetails, page numbers from 1 until
        `count` servers are in (or a page comes back short). Not filtered further: see `list_servers`."""
        if not 1 <= page_size <= MAX_SERVERS_PER_PAGE:
            raise RequestValidationError("limit", f"must be 1 to {MAX_SERVERS_PER_PAGE}")
        try:
            query.check()
        except ValueError as exc:
            raise RequestValidationError("selector", str(exc)) from None
        url = f"{self.settings.ecs_base_url()}/v1/{self.settings.project_id}/cloudservers/detail"
        seen, page_number = 0, 1
        while True:
            params = query.params(page_number, page_size)

            page = await self._read(
                Endpoint.SERVERS, "GET", url, ServersPage.model_validate_json, "server listing", params=params
            )
            servers = page.listed()
            yield servers, page.count
            seen += len(servers)
            if len(servers) < page_size or seen >= page.count:
                return
            page_number += 1

    async def list_servers(self, query: ServerQuery) -> list[ListedServer]:
        """Every ECS server matching `query` (every tag checked here), each once: ceil(N/1000) calls."""
        found: list[ListedServer] = []
        async for page, _ in self.iter_servers(query):
            found.extend(page)
        return select(found, query)

    # --- plumbing -------------------------------------------------------------------------------

    async def _read(
        self,
        endpoint: Endpoint,
        method: str,
        url: str,
        parse: Callable[[bytes], T],
        what: str,
        **kwargs: Any,
    ) -> T:
        """A call that changes nothing (a listing, a query): sent again after a transport error, a 429
        or 5xx, or a body that does not parse, within the retry budget."""

        async def attempt() -> T:
            try:
                response = await self._send(endpoint, method, url, **kwargs)
            except httpx.TransportError as exc:
                raise _Retryable(TransportError(f"{endpoint.value}: {type(exc).__name__}")) from None
            self._raise_for_status(response, endpoint)
            try:
                return parse(response.content)
            except ValidationError as exc:
                message = f"malformed {what} response: {exc.error_count()} problem(s)"
                raise _Retryable(
                    ApiError(response.status_code, None, message, endpoint=endpoint.value)
                ) from None

        return await self._with_retries(endpoint, attempt)

    async def _send(self, endpoint: Endpoint, method: str, path: str, **kwargs: Any) -> httpx.Response:
        limiter = self._limiters.get(endpoint)
        if limiter is not None:
            await limiter.acquire()
        self.stats.requests[endpoint.value] += 1
        started = time.perf_counter()
        response = await self._http.request(method, path, **kwargs)
        elapsed = time.perf_counter() - started
        self.stats.responses[(endpoint.value, response.status_code)] += 1
        log.debug("%s %s -> %d in %.3fs", method, path, response.status_code, elapsed)
        if self._on_response is not None:
            self._on_response(endpoint, response.status_code, elapsed)
        return response

    def _raise_for_status(self, response: httpx.Response, endpoint: Endpoint) -> None:
        if response.is_success:
            return
        error = _api_error(response, endpoint)
        if error.retryable:
            raise _Retryable(error, _retry_after(response))
        raise error

    async def _with_retries(self, endpoint: Endpoint, attempt: Callable[[], Awaitable[T]]) -> T:
        backoff = wait_random_exponential(
            multiplier=self.settings.backoff_initial, max=self.settings.backoff_max
        )

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            hinted = exc.retry_after if isinstance(exc, _Retryable) else None
            return min(hinted, self.settings.backoff_max) if hinted is not None else backoff(state)

        def before_sleep(state: RetryCallState) -> None:
            self.stats.retries[endpoint.value] += 1
            exc = state.outcome.exception() if state.outcome else None
            log.info("retrying %s after: %s", endpoint.value, exc)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.max_attempts),
            wait=wait,
            retry=retry_if_exception(lambda exc: isinstance(exc, _Retryable)),
            before_sleep=before_sleep,
            reraise=True,
            sleep=self._sleep,
        )
        try:
            return await retrying(attempt)
        except _Retryable as exc:
            raise exc.error from None
