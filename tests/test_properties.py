"""Property-based tests of the parsers that read untrusted input: buttons, callbacks, captions."""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from bot.chat.callback_data import Action, DraftButton, decode
from bot.core.caption import Caption, parse_caption
from bot.providers.base import ProviderState, ProviderTask
from bot.providers.errors import (
    AuthenticationError,
    CallbackRejectedError,
    ContentRejectedError,
    InsufficientCreditsError,
    InvalidRequestError,
    ProviderError,
    RateLimitError,
    ServiceUnavailableError,
)
from bot.providers.kie import KieProvider, parse_record, raise_for_code, signature
from bot.providers.kling import official_kling
from bot.providers.kling_wire import OfficialShapeProvider, error_for, parse_task

# Keep Hypothesis' caches (unicode tables) out of the working tree; no example database.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "kling-bot-hypothesis")
FAST = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

HMAC_KEY = "hmac-secret"
NOW = 1_700_000_000.0
WINDOW = 300

# --- strategies ----------------------------------------------------------------------------

JSON_SCALARS: st.SearchStrategy[Any] = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON: st.SearchStrategy[Any] = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)
# Values that are empty or false: what `x or default` replaces.
FALSY: st.SearchStrategy[Any] = st.sampled_from([None, False, 0, 0.0, "", [], {}])
NON_EMPTY_TEXT = st.text(min_size=1, max_size=40)
# Any unicode string, lone surrogates included (plain `st.text()` leaves them out).
ANY_CHARACTER = st.characters() | st.characters(categories=["Cs"])


def dumps(value: Any) -> bytes:
    """`value` as a JSON body."""
    return json.dumps(value).encode()


def bodies(shaped: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, arbitrary JSON, and JSON shaped like the real thing in several codecs."""
    return st.one_of(
        st.binary(max_size=80),
        st.text(ANY_CHARACTER, max_size=40).map(lambda s: s.encode("utf-8", "surrogatepass")),
        JSON.map(dumps),
        shaped.map(dumps),
        shaped.map(lambda value: json.dumps(value, ensure_ascii=False).encode("utf-16")),
    )


KIE_KEYS = st.sampled_from(["taskId", "task_id", "state", "resultJson", "failMsg", "failCode"])
KIE_SHAPED = st.fixed_dictionaries(
    {"data": JSON | st.dictionaries(KIE_KEYS | st.text(max_size=8), JSON | NON_EMPTY_TEXT)},
    optional={"code": JSON, "msg": JSON},
)
KLING_KEYS = st.sampled_from(
    ["task_id", "task_status", "task_status_msg", "task_result", "task_info", "data", "code"]
)
KLING_OBJECT = st.dictionaries(KLING_KEYS | st.text(max_size=8), JSON | NON_EMPTY_TEXT)
KLING_SHAPED = KLING_OBJECT | st.fixed_dictionaries(
    {"code": JSON, "data": JSON | KLING_OBJECT}, optional={"message": JSON}
)


# --- providers -----------------------------------------------------------------------------


def no_network(request: httpx.Request) -> httpx.Response:
    """Parsing a callback must not call the provider."""
    raise AssertionError(f"unexpected request to {request.url}")


def kie_provider(hmac_key: str | None) -> KieProvider:
    """A kie provider whose transport refuses every request."""
    return KieProvider(
        "key-123",
        api_url="https://api.test",
        upload_url="https://upload.test",
        hmac_key=hmac_key,
        transport=httpx.MockTransport(no_network),
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kie() -> AsyncIterator[KieProvider]:
    """A kie provider without a webhook HMAC key."""
    provider = kie_provider(None)
    yield provider
    await provider.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kie_signed() -> AsyncIterator[KieProvider]:
    """A kie provider that checks webhook signatures."""
    provider = kie_provider(HMAC_KEY)
    yield provider
    await provider.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kling() -> AsyncIterator[OfficialShapeProvider]:
    """The official Kling provider with a plain API key."""
    provider = official_kling(
        "https://kling.test", api_key="k" * 40, transport=httpx.MockTransport(no_network)
    )
    yield provider
    await provider.aclose()


# --- 1. callback_data ----------------------------------------------------------------------

WITH_ARGUMENT = frozenset({Action.DURATION, Action.MODEL, Action.CAMERA, Action.MODEL_GROUP})
ARGUMENTS = st.from_regex(r"[a-z0-9]{1,16}", fullmatch=True)


@st.composite
def draft_buttons(draw: st.DrawFn) -> DraftButton:
    """Every valid button: arguments exactly for the actions that take one."""
    action = draw(st.sampled_from(Action))
    argument = draw(ARGUMENTS) if action in WITH_ARGUMENT else None
    return DraftButton(draw(st.integers(1, 10**18 - 1)), action, argument)


# Strings close to the grammar: any digits (ASCII, Arabic-Indic, fullwidth), known and unknown
# actions, arguments with capitals, a trailing newline.
NEAR_BUTTONS = st.from_regex(
    r"d:[0-9٠-٩０-９]{0,20}:(dur|snd|mdl|m|back|go|x|mode|cfg|img|cam|c|[a-zA-Z]{0,5})"
    r"(:[a-zA-Z0-9_]{0,18})?\n?",
    fullmatch=True,
)
CALLBACK_STRINGS = st.one_of(
    st.text(ANY_CHARACTER, max_size=80),
    st.text(ANY_CHARACTER, min_size=60, max_size=300),
    NEAR_BUTTONS,
    draft_buttons().map(DraftButton.encode),
)


@FAST
@given(draft_buttons())
def test_every_button_round_trips_within_64_bytes(button: DraftButton) -> None:
    """A valid button decodes back to itself and fits Telegram's 64-byte limit."""
    data = button.encode()
    assert 1 <= len(data.encode()) <= 64
    assert decode(data) == button


@FAST
@given(CALLBACK_STRINGS)
@example("d:0:go")
def test_decode_never_raises_and_returns_consistent_buttons(data: str) -> None:
    """Any string decodes to None or to a well-formed button that re-encodes to itself."""
    button = decode(data)
    if button is None:
        return
    assert 0 <= button.draft_id < 10**18
    assert (button.argument is not None) == (button.action in WITH_ARGUMENT)
    assert decode(button.encode()) == button


@FAST
@given(CALLBACK_STRINGS)
@example("d:01:go")
@example("d:\u0663:go")
def test_decode_accepts_only_what_encode_produces(data: str) -> None:
    """A string decodes to a button only if it is that button's encoding: no aliases."""
    button = decode(data)
    assert button is None or button.encode() == data


def test_decode_none_and_empty() -> None:
    """Telegram may send no callback_data at all."""
    assert decode(None) is None
    assert decode("") is None


# --- 2. kie callbacks ----------------------------------------------------------------------


def kie_body(task_id: str, key: str = "taskId") -> bytes:
    """A kie callback body about `task_id`."""
    return dumps({"code": 200, "msg": "done", "data": {key: task_id, "state": "success"}})


def signed(task_id: str, stamp: str) -> dict[str, str]:
    """The webhook headers kie sends for `task_id` at `stamp`."""
    return {
        "x-webhook-timestamp": stamp,
        "x-webhook-signature": signature(HMAC_KEY, task_id, stamp),
    }


def accepts_or_rejects(parse: Callable[[], str]) -> str | None:
    """The task id `parse` returns, or None if it raised CallbackRejectedError."""
    try:
        task_id = parse()
    except CallbackRejectedError:
        return None
    assert isinstance(task_id, str)
    assert task_id
    return task_id


@FAST
@given(bodies(KIE_SHAPED))
def test_kie_callback_body_is_read_or_rejected(kie: KieProvider, body: bytes) -> None:
    """Any body yields a non-empty task id or CallbackRejectedError, nothing else."""
    accepts_or_rejects(lambda: kie.parse_callback({}, body, NOW))


@FAST
@given(
    body=bodies(KIE_SHAPED),
    stamp=st.integers(int(NOW) - WINDOW, int(NOW) + WINDOW).map(str) | st.text(max_size=12),
    given_signature=st.text(max_size=60),
)
def test_kie_signed_callback_with_any_body_is_rejected(
    kie_signed: KieProvider, body: bytes, stamp: str, given_signature: str
) -> None:
    """Without the right signature every body is rejected, and only with CallbackRejectedError."""
    headers = {"x-webhook-timestamp": stamp, "x-webhook-signature": given_signature}
    with pytest.raises(CallbackRejectedError):
        kie_signed.parse_callback(headers, body, NOW)


TIMES = st.integers(0, 2**33)
OFFSETS_INSIDE = st.integers(-WINDOW, WINDOW) | st.floats(-WINDOW, WINDOW)
OFFSETS_OUTSIDE = st.floats(WINDOW + 0.001, 1e9) | st.floats(-1e9, -WINDOW - 0.001)
ID_KEYS = st.sampled_from(["taskId", "task_id"])


@FAST
@given(task_id=NON_EMPTY_TEXT, key=ID_KEYS, sent_at=TIMES, offset=OFFSETS_INSIDE)
@example(task_id="t-1", key="taskId", sent_at=int(NOW), offset=WINDOW)
@example(task_id="t-1", key="taskId", sent_at=int(NOW), offset=-WINDOW)
def test_kie_signed_callback_accepted_within_window(
    kie_signed: KieProvider, task_id: str, key: str, sent_at: int, offset: float
) -> None:
    """A callback signed for its task is accepted up to 300 s either side of its timestamp."""
    headers = signed(task_id, str(sent_at))
    assert kie_signed.parse_callback(headers, kie_body(task_id, key), sent_at + offset) == task_id


@FAST
@given(task_id=NON_EMPTY_TEXT, sent_at=TIMES, offset=OFFSETS_OUTSIDE)
def test_kie_signed_callback_rejected_outside_window(
    kie_signed: KieProvider, task_id: str, sent_at: int, offset: float
) -> None:
    """A correctly signed callback is rejected once its timestamp is over 300 s away."""
    with pytest.raises(CallbackRejectedError):
        kie_signed.parse_callback(
            signed(task_id, str(sent_at)), kie_body(task_id), sent_at + offset
        )


@FAST
@given(task_id=NON_EMPTY_TEXT, forged=st.text(max_size=60), flip=st.integers(0, 43))
def test_kie_changed_signature_is_rejected(
    kie_signed: KieProvider, task_id: str, forged: str, flip: int
) -> None:
    """Any other signature, arbitrary or one character off, is rejected."""
    stamp = str(int(NOW))
    good = signed(task_id, stamp)["x-webhook-signature"]
    swapped = "A" if good[flip] != "A" else "B"
    for bad in (forged, good[:flip] + swapped + good[flip + 1 :], good + "=", good.lower()):
        if bad == good:
            continue
        headers = {"x-webhook-timestamp": stamp, "x-webhook-signature": bad}
        with pytest.raises(CallbackRejectedError):
            kie_signed.parse_callback(headers, kie_body(task_id), NOW)


@FAST
@given(task_id=NON_EMPTY_TEXT, other=NON_EMPTY_TEXT, key=ID_KEYS)
def test_kie_signature_for_another_task_is_rejected(
    kie_signed: KieProvider, task_id: str, other: str, key: str
) -> None:
    """A signature made for one task does not let a body name another."""
    if other == task_id:
        other += "x"
    headers = signed(task_id, str(int(NOW)))
    with pytest.raises(CallbackRejectedError):
        kie_signed.parse_callback(headers, kie_body(other, key), NOW)


@st.composite
def other_stamps(draw: st.DrawFn, stamp: int) -> str:
    """A different timestamp string that still reads as a time inside the window."""
    text = str(stamp)
    return draw(
        st.sampled_from([f"0{text}", f"{text}.0", f" {text}", f"{text}\n", f"{text}e0"])
        | st.integers(-WINDOW, WINDOW).filter(bool).map(lambda delta: str(stamp + delta))
    )


@FAST
@given(task_id=NON_EMPTY_TEXT, data=st.data())
def test_kie_changed_timestamp_is_rejected(
    kie_signed: KieProvider, task_id: str, data: st.DataObject
) -> None:
    """Re-dating a signed callback, even to an equal or nearby time, breaks its signature."""
    stamp = int(NOW)
    headers = signed(task_id, str(stamp))
    headers["x-webhook-timestamp"] = data.draw(other_stamps(stamp))
    with pytest.raises(CallbackRejectedError):
        kie_signed.parse_callback(headers, kie_body(task_id), NOW)


HEADER_NAMES = st.sampled_from(
    ["x-webhook-timestamp", "x-webhook-signature", "X-Webhook-Signature", "content-type"]
)


@FAST
@given(
    task_id=NON_EMPTY_TEXT,
    headers=st.dictionaries(
        HEADER_NAMES | st.text(max_size=20),
        st.text(max_size=60) | st.integers(int(NOW) - WINDOW, int(NOW) + WINDOW).map(str),
        max_size=5,
    ),
)
def test_kie_arbitrary_headers_are_rejected(
    kie_signed: KieProvider, task_id: str, headers: dict[str, str]
) -> None:
    """Headers with arbitrary text never raise anything but CallbackRejectedError."""
    with pytest.raises(CallbackRejectedError):
        kie_signed.parse_callback(headers, kie_body(task_id), NOW)


@pytest.mark.parametrize(
    ("task_id", "given_signature"),
    [("\ud800", "sig"), ("t-1", "\udc80")],
    ids=["surrogate-task-id-in-body", "surrogate-signature-header"],
)
def test_kie_surrogates_are_rejected(
    kie_signed: KieProvider, task_id: str, given_signature: str
) -> None:
    """Text that cannot be UTF-8 encoded is a rejected callback, not a crash."""
    body = kie_body(task_id)  # json.dumps escapes the surrogate: b'"\\ud800"'
    headers = {"x-webhook-timestamp": str(int(NOW)), "x-webhook-signature": given_signature}
    with pytest.raises(CallbackRejectedError):
        kie_signed.parse_callback(headers, body, NOW)


# --- 3. kling callbacks --------------------------------------------------------------------


@FAST
@given(bodies(KLING_SHAPED))
def test_kling_callback_body_is_read_or_rejected(kling: OfficialShapeProvider, body: bytes) -> None:
    """Any body yields a non-empty task id or CallbackRejectedError, nothing else."""
    accepts_or_rejects(lambda: kling.parse_callback({}, body, NOW))


VIDEO = st.fixed_dictionaries(
    {"id": st.text(max_size=12), "url": NON_EMPTY_TEXT, "duration": st.sampled_from(["5", "10"])}
)
TASK_OBJECTS = st.fixed_dictionaries(
    {
        "task_id": NON_EMPTY_TEXT,
        "task_status": st.sampled_from(["submitted", "processing", "succeed", "failed"]),
    },
    optional={
        "task_status_msg": st.text(max_size=30),
        "task_info": st.fixed_dictionaries({"external_task_id": st.text(max_size=12)}),
        "task_result": st.fixed_dictionaries({"videos": st.lists(VIDEO, max_size=2)}),
        "created_at": st.integers(0, 2**42),
        "updated_at": st.integers(0, 2**42),
    },
)


@FAST
@given(task=TASK_OBJECTS, request_id=st.text(max_size=12))
def test_kling_callback_flat_or_enveloped_names_the_same_task(
    kling: OfficialShapeProvider, task: dict[str, Any], request_id: str
) -> None:
    """A task object gives its task_id whether sent flat or inside the `code: 0` envelope."""
    envelope = {"code": 0, "message": "SUCCEED", "request_id": request_id, "data": task}
    flat = kling.parse_callback({}, dumps(task), NOW)
    wrapped = kling.parse_callback({}, dumps(envelope), NOW)
    assert flat == wrapped == task["task_id"]


@pytest.mark.parametrize("target", ["kie", "kie_signed", "kling", "parse_record"])
def test_deeply_nested_json_is_rejected(request: pytest.FixtureRequest, target: str) -> None:
    """A body nested too deeply to parse is a bad callback / unreadable record, not a crash."""
    nested = "[" * 100_000
    if target == "parse_record":
        record = parse_record({"taskId": "t", "state": "success", "resultJson": nested})
        assert record.state is ProviderState.FAILED
        return
    provider = request.getfixturevalue(target)
    with pytest.raises(CallbackRejectedError):
        provider.parse_callback({}, nested.encode(), NOW)


# --- 4. parse_record / parse_task ----------------------------------------------------------

KIE_STATES = st.sampled_from(["waiting", "queuing", "generating", "success", "fail"])
ID_VALUES = NON_EMPTY_TEXT | JSON
RESULT_URL = NON_EMPTY_TEXT | JSON.filter(lambda value: value != "")


def result_json(urls: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`resultJson`: anything, or `{"resultUrls": [...]}` as an object or a JSON string."""
    other = JSON_SCALARS | st.dictionaries(st.text(max_size=6), JSON, max_size=3)
    shaped = st.fixed_dictionaries({"resultUrls": st.lists(urls, max_size=3) | other})
    return st.one_of(JSON, shaped, shaped.map(json.dumps), st.text(max_size=30))


def kie_records(
    fail_messages: st.SearchStrategy[Any], urls: st.SearchStrategy[Any] = RESULT_URL
) -> st.SearchStrategy[dict[str, Any]]:
    """recordInfo `data` objects with arbitrary values for the known keys."""
    return st.fixed_dictionaries(
        {},
        optional={
            "taskId": ID_VALUES,
            "task_id": ID_VALUES,
            "state": KIE_STATES | JSON,
            "resultJson": result_json(urls),
            "failMsg": fail_messages,
            "failCode": JSON,
            "model": JSON,
            "param": JSON,
        },
    )


def check_record(record: dict[str, Any]) -> ProviderTask | None:
    """parse_record's answer; ServiceUnavailableError only for a record without a taskId."""
    task_id = record.get("taskId") or record.get("task_id")
    try:
        task = parse_record(record)
    except ServiceUnavailableError:
        assert not isinstance(task_id, str) or not task_id
        return None
    assert task.id == task_id
    return task


@FAST
@given(kie_records(st.none() | st.text(max_size=30)))
def test_parse_record_reads_any_well_typed_record(record: dict[str, Any]) -> None:
    """A ProviderTask or ServiceUnavailableError; a success has a non-empty video URL."""
    task = check_record(record)
    if task is not None and task.state is ProviderState.SUCCEEDED:
        assert isinstance(task.video_url, str)
        assert task.video_url


@FAST
@given(kie_records(st.none() | st.text(max_size=30), urls=st.text(max_size=3) | JSON))
@example({"taskId": "t", "state": "success", "resultJson": '{"resultUrls": [""]}'})
def test_parse_record_success_always_has_a_video_url(record: dict[str, Any]) -> None:
    """A SUCCEEDED task always carries a non-empty video URL."""
    task = check_record(record)
    if task is not None and task.state is ProviderState.SUCCEEDED:
        assert task.video_url


@FAST
@given(kie_records(JSON))
@example({"taskId": "t", "state": "fail", "failMsg": 501})
def test_parse_record_raises_only_provider_errors(record: dict[str, Any]) -> None:
    """Whatever the values, parse_record returns a task or raises ServiceUnavailableError."""
    check_record(record)


KLING_STATUSES = st.sampled_from(["submitted", "processing", "succeed", "completed", "failed"])
VIDEO_ITEMS = (
    st.fixed_dictionaries({}, optional={"id": JSON, "url": NON_EMPTY_TEXT | JSON, "duration": JSON})
    | JSON
)
TASK_RESULTS = FALSY | st.fixed_dictionaries(
    {}, optional={"videos": FALSY | st.lists(VIDEO_ITEMS, min_size=1, max_size=3)}
)


def kling_tasks(
    messages: st.SearchStrategy[Any], results: st.SearchStrategy[Any]
) -> st.SearchStrategy[dict[str, Any]]:
    """Query/callback task objects with arbitrary values for the known keys."""
    return st.fixed_dictionaries(
        {},
        optional={
            "task_id": JSON,
            "task_status": KLING_STATUSES | JSON,
            "task_status_msg": messages,
            "task_result": results,
            "task_info": JSON,
            "created_at": JSON,
        },
    )


def check_task(data: dict[str, Any], reference: str) -> None:
    """parse_task never raises; the task keeps our reference; a success has a video URL."""
    task = parse_task(data, reference)
    assert task.id == reference
    if task.state is ProviderState.SUCCEEDED:
        videos = data["task_result"]["videos"]
        assert task.video_url
        assert task.video_url == videos[0]["url"]
    if task.state is ProviderState.FAILED:
        assert task.error is None or isinstance(task.error, str)


@FAST
@given(kling_tasks(st.none() | st.text(max_size=30), TASK_RESULTS), NON_EMPTY_TEXT)
def test_parse_task_reads_any_well_typed_task(data: dict[str, Any], reference: str) -> None:
    """Well-typed task objects (string message, object result, list of videos) always parse."""
    check_task(data, reference)


@FAST
@given(kling_tasks(JSON, JSON | TASK_RESULTS), NON_EMPTY_TEXT)
@example({"task_status": "succeed", "task_result": 5}, "T1")
@example({"task_status": "succeed", "task_result": {"videos": {"a": 1}}}, "T1")
@example({"task_status": "succeed", "task_result": {"videos": 5}}, "T1")
@example({"task_status": "failed", "task_status_msg": 1301}, "T1")
def test_parse_task_never_raises(data: dict[str, Any], reference: str) -> None:
    """Whatever the values, parse_task returns a task (unreadable success: FAILED)."""
    with contextlib.suppress(ProviderError):  # tolerated: the caller's handling sees it
        check_task(data, reference)


@FAST
@given(
    body=st.dictionaries(
        st.sampled_from(["code", "msg", "data"]) | st.text(max_size=6),
        st.sampled_from([200, 200.0, 400, 401, 402, 404, 422, 429, 455, 500, 501, 505]) | JSON,
    ),
    status=st.integers(100, 599),
)
def test_raise_for_code_passes_only_code_200(body: dict[str, Any], status: int) -> None:
    """raise_for_code returns for `code: 200` and raises a ProviderError for anything else."""
    response = httpx.Response(status)
    if body.get("code") == 200:
        raise_for_code(body, response)
    else:
        with pytest.raises(ProviderError):
            raise_for_code(body, response)


def kling_error_class(code: int) -> type[ProviderError] | None:
    """The class Kling's error table gives `code`, or None when the table is silent."""
    if 1000 <= code <= 1004 or code in (1103, 1304):
        return AuthenticationError
    if 1100 <= code <= 1102:
        return InsufficientCreditsError
    if 1200 <= code <= 1299:
        return InvalidRequestError
    if code in (1300, 1301):
        return ContentRejectedError
    if code in (1302, 1303):
        return RateLimitError
    if 5000 <= code <= 5099:
        return ServiceUnavailableError
    return None


@FAST
@given(
    code=st.integers(990, 1310) | st.integers(4990, 5110) | st.integers(),
    message=st.text(max_size=30),
    status=st.integers(100, 599),
)
def test_error_for_follows_the_table(code: int, message: str, status: int) -> None:
    """Every code maps to a ProviderError; the documented ranges to their classes."""
    error = error_for(code, message, httpx.Response(status))
    assert isinstance(error, ProviderError)
    expected = kling_error_class(code)
    if expected is not None:
        assert type(error) is expected
        assert error.code == code


# --- 5. captions ---------------------------------------------------------------------------

FLAG_TOKEN = re.compile(r"(?:^|\s)--(?:no|neg|negative|cfg)(?=\s|=|$)", re.I)
KEY_LINE = re.compile(
    r"^\s*(?:negative|neg|反向提示词|反向|负面提示词|负面|负向|cfg)\s*[:：]", re.I | re.M
)
CAPTION_PIECES = st.sampled_from(
    [
        "--no", "--NO", "--neg", "--negative", "--cfg", "--cfg=", "--", "—no", "-no", "=",
        "cfg:", "CFG :", "negative:", "neg：", "反向：", "负面提示词:", "negatives:",
        "0.7", "1,5", "0，3", "7", "-2", "nan", "inf", "-inf", "1e309", "lots",
        "a cat blinks", "blur, text", "小猫眨眼", " ", "  ", "\n", "\t", "\r\n", "\u3000",
    ]
)  # fmt: skip
CAPTIONS = st.one_of(
    st.text(ANY_CHARACTER, max_size=80),
    st.lists(CAPTION_PIECES | st.text(max_size=4), max_size=12).map("".join),
    st.lists(CAPTION_PIECES, max_size=8).map(" ".join),
)


@FAST
@given(CAPTIONS)
def test_parse_caption_is_total_and_clean(text: str) -> None:
    """Never raises; cfg within [0, 1]; no flag left in the prompt; no blank negative prompt."""
    caption = parse_caption(text)
    assert caption.cfg_scale is None or 0.0 <= caption.cfg_scale <= 1.0
    assert FLAG_TOKEN.search(caption.prompt) is None, caption
    assert caption.prompt == caption.prompt.strip()
    assert caption.negative_prompt is None or caption.negative_prompt.strip()


@FAST
@given(CAPTIONS)
def test_plain_caption_is_the_prompt(text: str) -> None:
    """Text without `--` and without a `key:` line is the prompt, only stripped."""
    if "--" in text or KEY_LINE.search(text):
        return
    assert parse_caption(text) == Caption(text.strip())
