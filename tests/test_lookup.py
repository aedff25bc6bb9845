"""Looking a task up by our external_task_id: found, proven absent, or unknown."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from bot.providers.errors import LookupInconclusiveError, ServiceUnavailableError
from bot.providers.kling import official_kling
from bot.providers.kling_wire import OfficialShapeProvider
from bot.providers.tuzi import tuzi

Answer = Callable[[httpx.Request], httpx.Response]
OURS = "kb7-abcdef12"


def envelope(data: object, code: int = 0, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "message": "m", "data": data})


def task(task_id: str, external_id: str | None = OURS) -> dict[str, object]:
    info = {} if external_id is None else {"external_task_id": external_id}
    return {"task_id": task_id, "task_status": "processing", "task_info": info}


NOT_FOUND = envelope(None, code=1201, status=404)
NO_ROUTE = httpx.Response(404, text="404 page not found")


def routes(
    query: httpx.Response, path: httpx.Response, multi: httpx.Response = NOT_FOUND
) -> Answer:
    """Answers for the query form and the path form of image2video, and multi-image2video."""

    def answer(request: httpx.Request) -> httpx.Response:
        if "multi-image2video" in request.url.path:
            return multi
        if request.url.params.get("external_task_id") == OURS:
            return query
        assert request.url.path.endswith(f"/image2video/{OURS}"), request.url
        return path

    return answer


def kling(answer: Answer) -> OfficialShapeProvider:
    return official_kling("https://kling.test", api_key="k", transport=httpx.MockTransport(answer))


async def find(provider: OfficialShapeProvider) -> str | None:
    try:
        return await provider.find(OURS)
    finally:
        await provider.aclose()


@pytest.mark.parametrize(
    ("query", "path", "found"),
    [
        (envelope(task("t1")), NOT_FOUND, "t1"),  # the documented query form
        (envelope([task("t9", "someone-else"), task("t1")]), NOT_FOUND, "t1"),  # a list
        (NO_ROUTE, envelope(task("t1")), "t1"),  # a copy that only has the path form
        (NOT_FOUND, NOT_FOUND, None),  # the API's own "not found" at both endpoints
        (envelope([]), NOT_FOUND, None),  # an empty result
    ],
)
async def test_official_lookup_finds_or_proves_absence(
    query: httpx.Response, path: httpx.Response, found: str | None
) -> None:
    assert await find(kling(routes(query, path))) == found


@pytest.mark.parametrize(
    ("query", "path"),
    [
        (NO_ROUTE, NOT_FOUND),  # no query form: a path-form miss proves nothing
        (envelope([task("t9", "someone-else")]), NOT_FOUND),  # the filter was ignored
        (envelope(task("t9", "someone-else")), NOT_FOUND),  # another task's answer
        (envelope([task("t9", None)]), NOT_FOUND),  # a list item that names no external id
        (envelope(None, code=1201, status=400), NOT_FOUND),  # a refused query, not "absent"
    ],
)
async def test_official_lookup_that_cannot_tell_says_so(
    query: httpx.Response, path: httpx.Response
) -> None:
    with pytest.raises(LookupInconclusiveError):
        await find(kling(routes(query, path)))


@pytest.mark.parametrize(
    "query",
    [envelope(None, code=5000, status=500), httpx.Response(200, text="<html>ok</html>")],
)
async def test_a_server_error_during_the_lookup_is_retried_not_taken_as_absence(
    query: httpx.Response,
) -> None:
    with pytest.raises(ServiceUnavailableError) as caught:
        await find(kling(routes(query, NOT_FOUND)))
    assert caught.value.retryable


async def test_a_tuzi_miss_proves_nothing_but_a_hit_is_adopted() -> None:
    transport = httpx.MockTransport(routes(NOT_FOUND, NOT_FOUND))
    with pytest.raises(LookupInconclusiveError):
        await find(tuzi("https://tuzi.test/kling", "k", transport))
    transport = httpx.MockTransport(routes(NO_ROUTE, envelope(task("t3"))))
    assert await find(tuzi("https://tuzi.test/kling", "k", transport)) == "t3"


async def test_a_multi_image_task_is_found_under_its_endpoint() -> None:
    answer = routes(NOT_FOUND, NOT_FOUND, multi=envelope(task("m1")))
    assert await find(kling(answer)) == "multi:m1"
