"""A loopback fake of the Telegram Bot API that a real PTB Application can talk to.

Layout: ``server`` (the Starlette app: routing, recorded calls, faults, holds), ``state``
(chats, messages, files, the updates queue), ``methods`` (one handler per Bot API method),
``parsing`` (request bodies and parameter types), ``formatting`` (parse modes, entities),
``keyboards`` (inline keyboards), ``media`` (thumbnails, MIME types), ``errors``.

Faults: ``fail_next(method, status=...)`` fails the next calls of a method (any case);
without a description, 5xx statuses say their HTTP phrase, and 502-504 come as nginx's HTML
page, as api.telegram.org sends them (getUpdates included: PTB raises NetworkError).

Stopping the bot at an exact step: ``hold(endpoint, after=False, times=None)`` holds the next
``times`` calls (all when None) of a Bot API method (any case), or "file" for downloads from
``/file/bot<token>/...``, until ``Hold.release()``. A held call is recorded in ``calls`` first;
held before the work it is not handled (status 0, error "held"), with ``after=True`` it is
handled (message stored, file served) and only the answer waits. Each call is taken by at most
one hold, the oldest active one. ``delay(method, seconds, times=None)`` answers late, after the
work; ``seconds=0`` clears it. A held or delayed call whose client leaves (the bot was killed)
ends quietly; one still waiting when the server shuts down (the test leaves ``serve()``) or at
``shutdown()`` is answered 503. Release holds before stopping a bot that waits on them.

Webhook mode: setWebhook keeps the URL, the ``secret_token`` (``webhook_secret_token``) and
``allowed_updates``; getUpdates is then refused with 409. The fake posts nothing itself: a
deliverer (tests/webhooks.py) takes the pending updates with ``webhook_updates()`` and reports
each 200 with ``webhook_delivered(update_id)`` (only then is the update gone, as in Telegram)
and each failure with ``webhook_failed(message)`` (getWebhookInfo's last error).
"""

from tests.fakes.common import Hold
from tests.fakes.telegram.errors import ApiError
from tests.fakes.telegram.formatting import parse_html
from tests.fakes.telegram.media import thumbnail as _thumbnail
from tests.fakes.telegram.server import FakeTelegram
from tests.fakes.telegram.state import Call, FakeUser

__all__ = [
    "ApiError",
    "Call",
    "FakeTelegram",
    "FakeUser",
    "Hold",
    "_thumbnail",  # bench.fakes looks for it (already memoized here)
    "parse_html",
]
