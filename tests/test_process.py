"""The real entry point as a separate process: configuration errors and a clean run."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
from pathlib import Path

import httpx

from tests.conftest import KIE_KEY, TOKEN, free_port, jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.server import serve
from tests.fakes.telegram import FakeTelegram, FakeUser

BASE_ENV = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}


async def run_bot(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        env={**BASE_ENV, "PYTHONPATH": str(Path(__file__).parents[1]), **env},
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finished(env: dict[str, str], cwd: Path) -> tuple[int, str]:
    process = await run_bot(env, cwd)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, err.decode()


async def test_missing_token_exits_2_with_one_clear_line(tmp_path: Path) -> None:
    code, err = await finished({"KIE_API_KEY": "k"}, tmp_path)
    assert code == 2
    assert err.strip() == "kling-bot: Set TELEGRAM_BOT_TOKEN to the token @BotFather gave you."


async def test_no_backend_exits_2_without_traceback(tmp_path: Path) -> None:
    code, err = await finished({"TELEGRAM_BOT_TOKEN": TOKEN, "PREVIEW_BACKEND": "false"}, tmp_path)
    assert code == 2
    assert "KIE_API_KEY" in err and "Traceback" not in err
    assert TOKEN not in err


async def test_bad_values_and_unknown_default_model_exit_2(tmp_path: Path) -> None:
    env = {"TELEGRAM_BOT_TOKEN": TOKEN, "KIE_API_KEY": "k", "POLL_INTERVAL": "soon"}
    code, err = await finished(env, tmp_path)
    assert code == 2 and "POLL_INTERVAL" in err and "Traceback" not in err
    env = {"TELEGRAM_BOT_TOKEN": TOKEN, "KIE_API_KEY": "k", "DEFAULT_MODEL": "kie:nope"}
    code, err = await finished(env, tmp_path)
    assert code == 2 and "DEFAULT_MODEL" in err and "kie:kling/v2-1-pro" in err
    for name, value in (("LOG_LEVEL", "verbose"), ("LOG_FORMAT", "xml")):
        code, err = await finished({**env, "DEFAULT_MODEL": "", name: value}, tmp_path)
        assert code == 2 and err.startswith(f"kling-bot: {name}: Input should be "), err


async def test_env_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"TELEGRAM_BOT_TOKEN={TOKEN}\nPREVIEW_BACKEND=false\n")
    code, err = await finished({}, tmp_path)
    assert code == 2 and "TELEGRAM_BOT_TOKEN" not in err and "KIE_API_KEY" in err


async def test_env_file_is_read_from_the_working_directory_only_and_the_environment_wins(
    tmp_path: Path,
) -> None:
    (tmp_path / ".env").write_text(f"TELEGRAM_BOT_TOKEN={TOKEN}\nPREVIEW_BACKEND=false\n")
    below = tmp_path / "below"
    below.mkdir()
    code, err = await finished({}, below)
    assert code == 2 and "TELEGRAM_BOT_TOKEN" in err, "a parent's .env is not read"
    (below / ".env").write_text(f"TELEGRAM_BOT_TOKEN={TOKEN}\nLOG_LEVEL=chatty\n")
    code, err = await finished({"LOG_LEVEL": "error", "PREVIEW_BACKEND": "false"}, below)
    assert code == 2 and "LOG_LEVEL" not in err and "KIE_API_KEY" in err


async def test_python_m_bot_serves_a_user_and_stops_on_sigterm(tmp_path: Path) -> None:
    telegram = FakeTelegram(token=TOKEN)
    async with (
        FakeKie(api_key=KIE_KEY) as kie,
        serve(telegram.app) as tg,
        serve(kie.app) as kie_url,
    ):
        kie.finish_after = 0.2
        port = free_port()
        process = await run_bot(
            {
                "TELEGRAM_BOT_TOKEN": TOKEN,
                "TELEGRAM_API_URL": tg,
                "KIE_API_KEY": KIE_KEY,
                "KIE_API_URL": kie_url,
                "KIE_UPLOAD_URL": kie_url,
                "DATABASE_PATH": str(tmp_path / "db" / "bot.sqlite3"),
                "HTTP_HOST": "127.0.0.1",
                "HTTP_PORT": str(port),
                "POLL_INTERVAL": "0.1",
            },
            tmp_path,
        )
        try:
            await telegram.wait_for_call("getUpdates", timeout=20)
            async with httpx.AsyncClient() as client:
                health = await client.get(f"http://127.0.0.1:{port}/healthz")
            assert health.status_code == 200
            user = FakeUser(id=77)
            photo = telegram.send_photo(user, jpeg(), "the lights flicker")
            draft = await telegram.wait_for_call(
                "sendMessage", lambda c: c.ok and "the lights flicker" in c.params["text"]
            )
            markup = draft[0].result["reply_markup"]["inline_keyboard"]
            go = next(b["callback_data"] for row in markup for b in row if "Generate" in b["text"])
            telegram.tap(user, draft[0].result, go)
            video = await telegram.wait_for_call("sendVideo", timeout=10)
            assert video[0].files["video"] == kie.video
            assert video[0].params["reply_parameters"]["message_id"] == photo["message_id"]
        finally:
            process.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(process.communicate(), 30)
            telegram.shutdown()
        assert process.returncode == 0, err.decode()
        logs = err.decode()
        assert "kling-bot started" in logs
        assert TOKEN not in logs and KIE_KEY not in logs
        assert (tmp_path / "db" / "bot.sqlite3").exists()


# A line printed by our handler: "2026-11-29 12:00:00,000 WARNING uvicorn.error: ...".
OUR_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+: ")


def assert_one_line_without_secrets(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert TOKEN not in err and TOKEN.split(":")[1] not in err and KIE_KEY not in err
    return lines[0]


async def test_refused_token_exits_2_with_one_line_and_no_token(tmp_path: Path) -> None:
    telegram = FakeTelegram(token="987654321:AAAnotherBotsTokenThatIsNotOurs_xyz")
    async with serve(telegram.app) as tg:
        env = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": tg, "KIE_API_KEY": KIE_KEY}
        code, err = await finished({**env, "HTTP_PORT": "0"}, tmp_path)
    assert code == 2
    line = assert_one_line_without_secrets(err)
    assert line == (
        f"kling-bot: the Bot API at {tg} refused TELEGRAM_BOT_TOKEN; "
        "set the token @BotFather gave you."
    )
    assert [call.method for call in telegram.calls] == ["getMe"]


async def test_unreachable_bot_api_exits_2_with_one_line(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    env = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": closed, "KIE_API_KEY": KIE_KEY}
    code, err = await finished({**env, "HTTP_PORT": "0"}, tmp_path)
    assert code == 2
    line = assert_one_line_without_secrets(err)
    assert line.startswith(f"kling-bot: cannot reach the Bot API at {closed} (")
    assert line.endswith("; check the network and TELEGRAM_API_URL.")


async def test_busy_port_exits_2_before_calling_telegram(tmp_path: Path) -> None:
    telegram = FakeTelegram(token=TOKEN)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with serve(telegram.app) as tg:
            env = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": tg, "KIE_API_KEY": KIE_KEY}
            env |= {"HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(port)}
            code, err = await finished(env, tmp_path)
    assert code == 2
    line = assert_one_line_without_secrets(err)
    assert line.startswith(f"kling-bot: cannot listen on 127.0.0.1:{port} (")
    assert telegram.calls == []


async def test_a_crash_at_start_is_reported_through_our_masking_handler(tmp_path: Path) -> None:
    telegram = FakeTelegram(token=TOKEN)
    async with serve(telegram.app) as tg:
        env = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": tg, "KIE_API_KEY": KIE_KEY}
        # A folder that cannot be made, named so that the error quotes a secret.
        env |= {"HTTP_PORT": "0", "DATABASE_PATH": f"/dev/null/{TOKEN}/bot.sqlite3"}
        code, err = await finished(env, tmp_path)
    assert code == 1
    assert OUR_LINE.match(err), err
    assert "CRITICAL bot: kling-bot stopped by an unexpected error" in err
    assert "Traceback" in err and "/dev/null/[redacted]" in err
    assert TOKEN not in err and TOKEN.split(":")[1] not in err


async def test_json_logs_are_one_masked_object_a_line(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    env = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": closed, "KIE_API_KEY": KIE_KEY}
    env |= {"HTTP_PORT": "0", "LOG_FORMAT": "json"}
    code, err = await finished(env, tmp_path)
    assert code == 2
    (refused,) = (json.loads(line) for line in err.splitlines())
    assert refused["level"] == "ERROR" and refused["logger"] == "bot"
    assert refused["message"].startswith(f"kling-bot: cannot reach the Bot API at {closed} (")
    # A crash: its traceback is inside the object, masked.
    env |= {"DATABASE_PATH": f"/dev/null/{TOKEN}/bot.sqlite3", "LOG_LEVEL": "warning"}
    code, err = await finished(env, tmp_path)
    assert code == 1
    (crash,) = (json.loads(line) for line in err.splitlines())
    assert (
        crash["level"] == "CRITICAL"
        and crash["message"] == "kling-bot stopped by an unexpected error"
    )
    assert (
        crash["exception"].startswith("Traceback") and "/dev/null/[redacted]" in crash["exception"]
    )
    assert TOKEN not in err and TOKEN.split(":")[1] not in err


async def test_web_app_errors_are_logged_only_through_our_masking_handler(tmp_path: Path) -> None:
    telegram = FakeTelegram(token=TOKEN)
    async with (
        serve(telegram.app) as tg,
        FakeKie(api_key=KIE_KEY) as kie,
        serve(kie.app) as kie_url,
    ):
        port = free_port()
        process = await run_bot(
            {
                "TELEGRAM_BOT_TOKEN": TOKEN,
                "TELEGRAM_API_URL": tg,
                "KIE_API_KEY": KIE_KEY,
                "KIE_API_URL": kie_url,
                "PUBLIC_URL": f"http://127.0.0.1:{port}",
                "DATABASE_PATH": str(tmp_path / "bot.sqlite3"),
                "HTTP_HOST": "127.0.0.1",
                "HTTP_PORT": str(port),
            },
            tmp_path,
        )
        try:
            await telegram.wait_for_call("getUpdates", timeout=20)
            async with httpx.AsyncClient() as client:
                huge = await client.post(
                    f"http://127.0.0.1:{port}/callbacks/kie/{'9' * 30}/{TOKEN}", content=b"{}"
                )
            # uvicorn itself refuses this one, and says so on its error logger.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET /{TOKEN} HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".encode())
            garbage = await asyncio.wait_for(reader.readline(), 5)
            writer.close()
            await writer.wait_closed()
        finally:
            process.send_signal(signal.SIGTERM)
            _, raw = await asyncio.wait_for(process.communicate(), 30)
            telegram.shutdown()
    err = raw.decode()
    assert process.returncode == 0, err
    assert huge.status_code == 404 and garbage.startswith(b"HTTP/1.1 400")
    assert "WARNING uvicorn.error: Invalid HTTP request received." in err
    for line in err.splitlines():
        assert OUR_LINE.match(line), line
    assert TOKEN not in err and TOKEN.split(":")[1] not in err and KIE_KEY not in err
