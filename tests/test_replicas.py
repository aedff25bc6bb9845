"""Three replicas on one PostgreSQL: SIGKILL the polling leader and busy workers, lose nothing.

Each test runs three `python -m bot` processes against one throwaway PostgreSQL database and
the loopback fakes, in long-polling mode or in webhook mode (Telegram's delivery and the
reverse proxy modelled by tests/webhooks.py), kills one at an exact step and checks, from the
fakes and the database: every photo one draft, every user exactly one video, one paid create
per press of Generate (or Retry), every Telegram update handled, no task left unfinished, and
how long the survivors took to take over. The figures are printed at the end of the module.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.fakes.telegram import FakeUser
from tests.ledger import MONEY
from tests.postgres import postgres_server, postgres_url  # noqa: F401  (the fixtures, here)
from tests.replicas import Cluster, Replica, cluster, prompt, until
from tests.webhooks import ANSWER_LOST, DROPPED, REFUSED, Deliverer

# Polling moves to another replica within this long after the leader dies (issue 14).
TAKEOVER_LIMIT = 15.0
# Every task ends (delivered, or failed with a reason) within this long after the last kill:
# a dead replica's lease (3 s here) runs out and another's tracker, which looks at least once
# a renewal period (1 s) with several replicas, takes the task over; the rest is the work.
SETTLE = 20.0
FIGURES: list[str] = []
UNFINISHED = ("submitting", "queued", "running", "succeeded", "delivering")


@pytest.fixture(scope="module", autouse=True)
def figures(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print the takeover times and counts the tests measured, after the module."""
    yield
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is not None and FIGURES:
        with capture.global_and_fixture_disabled():
            print("\n--- replicas on PostgreSQL: takeovers and counts ---")
            for line in FIGURES:
                print(line)


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str:
    """A new database on the test run's PostgreSQL (skipped, in one line, without one)."""
    return str(request.getfixturevalue("postgres_url"))


async def fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Rows of one query on the test database."""
    connection = await asyncpg.connect(url)
    try:
        return list(await connection.fetch(sql, *args))
    finally:
        await connection.close()


async def generate(c: Cluster, users: list[FakeUser]) -> None:
    """Each user sends a photo and, once its draft is there, taps Generate."""
    for user in users:
        c.send_photo(user)
    for user in users:
        c.press(user, await c.draft(user), "Generate")


async def take_over(c: Cluster, leader: Replica, what: str) -> float:
    """SIGKILL the polling leader; seconds until another replica polls getUpdates."""
    return await taken_over(c, leader, await c.kill(leader), what)


async def taken_over(c: Cluster, leader: Replica, killed: float, what: str) -> float:
    """Seconds from the leader's kill until another replica polled getUpdates."""
    await until(lambda: bool(c.polls_after(killed)), TAKEOVER_LIMIT, f"{what}: a new poller")
    took = c.polls_after(killed)[0].at - killed
    successor = await c.until_leader()
    assert successor is not leader
    FIGURES.append(f"{what}: polling taken over in {took:.2f} s by {successor.name}")
    return took


LINKED = "restarted while sending"


def served(c: Cluster, user: FakeUser, cut_off: Collection[int]) -> bool:
    """The user has a video, or a link because a kill cut their upload off (no one can tell
    whether Telegram got it, and a link is never a second video)."""
    return bool(c.videos(user)) or (user.id in cut_off and bool(c.said_to(user, LINKED)))


async def audit(
    c: Cluster,
    url: str,
    users: list[FakeUser],
    presses: int,
    scenario: str,
    cut_off: Collection[int] = (),
) -> dict[str, int]:
    """The guarantees, from the fakes and the database, once every task has ended.

    `cut_off`: the chats whose upload had begun in a replica when it was killed.
    """

    async def unfinished() -> list[asyncpg.Record]:
        return await fetch(
            url, "SELECT id, state FROM tasks WHERE state = ANY($1::text[])", list(UNFINISHED)
        )

    deadline = time.monotonic() + SETTLE
    while (left := await unfinished()) or not all(served(c, u, cut_off) for u in users):
        if time.monotonic() > deadline:
            logs = "\n".join(f"== {r.name}\n{r.log()[-4000:]}" for r in c.replicas)
            tasks = await fetch(url, "SELECT id, chat_id, state, sending_at, error FROM tasks")
            videos = {u.id: len(c.videos(u)) for u in users}
            raise AssertionError(
                f"{scenario}: unfinished after {SETTLE} s: {left}\nvideos {videos}\n"
                f"tasks {[dict(t) for t in tasks]}\n{logs}"
            )
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # a second video or create would come about now
    videos = {u.id: len(c.videos(u)) for u in users}
    drafts = {u.id: sum(1 for call in c.telegram.calls if _is_draft_send(call, u)) for u in users}
    creates = len(c.kie.creates())
    handled = {
        row["update_id"]: row["handled_at"]
        for row in await fetch(url, "SELECT update_id, handled_at FROM updates")
    }
    # Never taken by any replica: lost. Taken but never recorded handled: its handler was cut
    # off by a kill (what it did shows in the drafts, tasks and videos counted here).
    lost = [uid for uid in c.telegram.sent_updates if uid not in handled]
    cut = [uid for uid in c.telegram.sent_updates if uid in handled and handled[uid] is None]
    failed = await fetch(url, "SELECT id, error FROM tasks WHERE state = 'failed'")
    conflicts = [call for call in c.telegram.calls_of("getUpdates") if call.status == 409]
    counts = {
        "users": len(users),
        "presses": presses,
        "paid creates": creates,
        "videos": sum(videos.values()),
        "links for cut-off uploads": sum(1 for u in users if c.said_to(u, LINKED)),
        "updates": len(c.telegram.sent_updates),
        "updates lost": len(lost),
        "handlers cut off": len(cut),
        "failed tasks": len(failed),
        "409s": len(conflicts),
    }
    FIGURES.append(f"{scenario}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    MONEY.record(scenario, presses=presses, paid_creates=creates, undelivered=0, identifiable=True)
    assert all(n == 1 for n in drafts.values()), drafts
    assert all(n <= 1 for n in videos.values()), videos
    assert all(n == 1 for uid, n in videos.items() if uid not in cut_off), (videos, cut_off)
    # Never more than one paid create per press; fewer when a killed worker's create never
    # left it (the user still sees 'may not have started', since no one can tell, and
    # retries).
    assert len(users) <= creates <= presses
    assert not lost, f"updates never handled: {lost}"
    assert all(row["error"] for row in failed)
    kills = sum(1 for r in c.replicas if r.killed_at is not None)
    # Only a killed leader's orphaned long poll is ever ended by another's.
    assert len(conflicts) <= kills
    return counts


def _is_draft_send(call: Any, user: FakeUser) -> bool:
    return (
        call.method == "sendMessage"
        and call.ok
        and int(call.params.get("chat_id", 0)) == user.id
        and prompt(user) in str(call.params.get("text", ""))
        and "Generate" in str(call.params.get("reply_markup", ""))
    )


async def test_the_polling_leader_killed_before_confirming_loses_no_update(
    database_url: str, tmp_path: Path
) -> None:
    async with cluster(database_url, tmp_path) as c:
        c.kie.finish_after = 0.5
        await c.start(3)
        users = [FakeUser(id=7100 + i) for i in range(5)]
        leader = await c.until_leader()
        # The leader fetches photos but never confirms them: the answer of the poll that took
        # them never reaches it, and it dies. (The first photo ends the poll under way.)
        held = c.telegram.hold("getUpdates", after=True, times=1)
        c.send_photo(users[0])
        await c.draft(users[0])
        for user in users[1:]:
            c.send_photo(user)
        await held.wait(timeout=10)
        assert not any(c.said_to(u, prompt(u)) for u in users[1:])
        took = await take_over(c, leader, "leader killed holding unconfirmed updates")
        held.release()
        for user in users:
            c.press(user, await c.draft(user), "Generate")
        await audit(c, database_url, users, presses=len(users), scenario="replicas: leader killed")
        assert took <= TAKEOVER_LIMIT


async def test_the_polling_leader_killed_while_handling_loses_no_update(
    database_url: str, tmp_path: Path
) -> None:
    async with cluster(database_url, tmp_path) as c:
        await c.start(3)
        user = FakeUser(id=7150)
        leader = await c.until_leader()
        stalled = c.telegram.hold("sendMessage", times=1)  # the draft for the photo
        c.send_photo(user)
        await stalled.wait(timeout=10)
        await take_over(c, leader, "leader killed while handling an update")
        stalled.release()
        try:
            await c.draft(user, timeout=TAKEOVER_LIMIT)
        finally:
            handled = await fetch(database_url, "SELECT update_id, holder, handled_at FROM updates")
            FIGURES.append(f"leader killed while handling: the ledger holds {handled}")


async def test_a_busy_worker_killed_mid_create_mid_poll_mid_upload(
    database_url: str, tmp_path: Path
) -> None:
    async with cluster(database_url, tmp_path) as c:
        c.kie.finish_after = 1.0
        await c.start(3)
        users = [FakeUser(id=7200 + i) for i in range(6)]
        presses = 0
        cut: set[int] = set()

        # Mid-create: kie took the create (it is paid for) and holds the answer.
        held = c.kie.hold("createTask", after=True, times=1)
        before = len(c.kie.creates())
        await generate(c, users[:2])
        presses += 2
        await held.wait(timeout=10)
        create = c.kie.creates()[before]
        worker = c.maker(create.client, c.kie_url)
        assert worker is not None
        (user,) = [u for u in users[:2] if prompt(u) in create.body.decode()]
        cut |= await _kill_worker(c, database_url, worker, "mid-create")
        held.release()
        # kie cannot be asked by our id: the user is told it may not have started, and a
        # Retry (a new press) is the one new create.
        notice = await c.telegram.wait_for_call(
            "editMessageText",
            lambda call: (
                int(call.params["chat_id"]) == user.id
                and "may not have started" in call.params["text"]
            ),
            timeout=SETTLE,
        )
        FIGURES.append(
            f"mid-create: 'may not have started' {notice[0].at - (worker.killed_at or 0):.2f} s "
            "after the kill"
        )
        # Another create the dead worker had under way is just as unsure: each such user
        # retries, and only those.
        await asyncio.sleep(1.0)
        for unsure in users[:2]:
            told = c.said_to(unsure, "may not have started")
            if told:
                message = c.telegram.messages[(unsure.id, told[0].params["message_id"])]
                c.press(unsure, message, "Retry")
                presses += 1
        assert user is not None and c.said_to(user, "may not have started")
        await c.start(1)

        # Mid-poll: the status query a replica sent is never answered.
        held = c.kie.hold("recordInfo", times=1)
        before = len(c.kie.requests)
        await generate(c, users[2:4])
        presses += 2
        await held.wait(timeout=SETTLE)
        poll = next(
            r for r in c.kie.requests[before:] if r.path.endswith("/recordInfo") and r.client
        )
        worker = c.maker(poll.client, c.kie_url)
        assert worker is not None
        cut |= await _kill_worker(c, database_url, worker, "mid-poll")
        held.release()
        await c.start(1)
        # The earlier users are served before the next step, so that its upload is theirs.
        await until(
            lambda: all(served(c, u, cut) for u in users[:4]), SETTLE, "the first four served"
        )

        # Mid-upload: Telegram got the video; the answer never reaches the uploader.
        held_video = c.telegram.hold("sendVideo", after=True, times=1)
        sent = len(c.telegram.calls_of("sendVideo"))
        await generate(c, users[4:])
        presses += 2
        await held_video.wait(timeout=SETTLE)
        upload = c.telegram.calls_of("sendVideo")[sent]  # the one held
        worker = c.maker(upload.client, c.telegram_url)
        assert worker is not None
        owner = await fetch(
            database_url, "SELECT lease_owner FROM tasks WHERE state = 'delivering'"
        )
        assert any(f":{worker.pid}/" in (row["lease_owner"] or "") for row in owner), owner
        cut |= await _kill_worker(c, database_url, worker, "mid-upload")
        held_video.release()
        uploaded = next(u for u in users[4:] if u.id == int(upload.params["chat_id"]))
        assert uploaded.id in cut, cut
        await until(
            lambda: bool(c.said_to(uploaded, LINKED)),
            SETTLE,
            "a link notice for the cut-off upload",
        )

        await audit(
            c,
            database_url,
            users,
            presses=presses,
            scenario="replicas: worker killed",
            cut_off=cut,
        )


async def _kill_worker(c: Cluster, url: str, worker: Replica, step: str) -> set[int]:
    """SIGKILL the worker (measuring the takeover if it led too); the chats whose upload it
    had begun."""
    sql = (
        "SELECT chat_id FROM tasks WHERE state = 'delivering' AND sending_at IS NOT NULL"
        " AND lease_owner LIKE $1"
    )
    owner = f"%:{worker.pid}/%"
    led = c.leader() is worker
    # Read just before the kill as well: on a loaded machine another replica could take a
    # lease that was close to running out before the read after it.
    before = await fetch(url, sql, owner)
    killed = await c.kill(worker)
    # Read after too (the dead one may have begun another upload meanwhile), before its
    # leases (3 s) can run out.
    after = await fetch(url, sql, owner)
    if led:
        await taken_over(c, worker, killed, f"{step} (the worker was the leader)")
    else:
        FIGURES.append(f"{step}: killed {worker.name}, not the leader")
    return {int(row["chat_id"]) for row in [*before, *after]}


# ---- webhook mode ------------------------------------------------------------------------------


async def all_delivered(c: Cluster, url: str, scenario: str) -> None:
    """Once Telegram is done delivering: every update it gave out was recorded handled (none
    lost, none left taken and unfinished), answered 200 only once it was, and none is left for
    Telegram to send; no replica polled."""
    deliverer = _deliverer(c)
    await until(deliverer.idle, SETTLE, f"{scenario}: Telegram done delivering")
    handled = {
        row["update_id"]: row["handled_at"]
        for row in await fetch(url, "SELECT update_id, handled_at FROM updates")
    }
    given = sorted(c.telegram.sent_updates)
    lost = [uid for uid in given if uid not in handled]
    assert not lost, f"updates never handled: {lost}; deliveries: {deliverer.attempts}"
    unfinished = [uid for uid in given if handled[uid] is None]
    assert not unfinished, f"updates taken and never recorded handled: {unfinished}"
    assert not c.telegram.pending_updates, "updates Telegram still has to deliver"
    early = [a for a in deliverer.attempts if a.status == 200 and not a.recorded]
    assert not early, f"answered 200 before the update was recorded handled: {early}"
    assert not c.telegram.calls_of("getUpdates")


async def webhook_audit(
    c: Cluster,
    url: str,
    users: list[FakeUser],
    presses: int,
    scenario: str,
    cut_off: Collection[int] = (),
) -> dict[str, int]:
    """`all_delivered`, then `audit`; and every press made exactly one paid create (no create
    was cut off in these scenarios)."""
    await all_delivered(c, url, scenario)
    counts = await audit(c, url, users, presses, scenario, cut_off)
    assert counts["paid creates"] == presses
    deliverer = _deliverer(c)
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(deliverer.outcomes().items()))
    FIGURES.append(
        f"{scenario}: {len(deliverer.attempts)} deliveries of {counts['updates']} updates "
        f"({outcomes}); every 200 came after its update was recorded handled"
    )
    return counts


def _deliverer(c: Cluster) -> Deliverer:
    assert c.webhook is not None
    return c.webhook


async def test_webhook_a_replica_killed_while_handling_loses_no_update(
    database_url: str, tmp_path: Path
) -> None:
    async with cluster(database_url, tmp_path, webhook=True) as c:
        c.kie.finish_after = 0.5
        await c.start(3)
        deliverer = _deliverer(c)
        users = [FakeUser(id=7300 + i) for i in range(4)]
        # The replica the first photo reaches opens its draft and stalls sending it; it dies
        # there, the webhook request unanswered. (Not a press: its update is recorded handled
        # once the task is claimed and shown, before the paid create; one cut off after the
        # claim is left to the sweep one lease later.)
        stalled = c.telegram.hold("sendMessage", times=1)
        c.send_photo(users[0])
        photo = max(c.telegram.sent_updates)
        await stalled.wait(timeout=10)
        handler = c.maker(c.telegram.calls_of("sendMessage")[0].client, c.telegram_url)
        assert handler is not None
        flight = deliverer.in_flight(photo)
        assert flight is not None and flight.target == handler.name
        killed = await c.kill(handler)
        stalled.release()
        # The others write now: every third request still goes to the dead replica's port.
        for user in users[1:]:
            c.send_photo(user)
        await all_delivered(c, database_url, "webhook: killed handling")
        attempts, done = deliverer.of(photo), deliverer.delivered(photo)
        assert done is not None and done.target != handler.name
        assert attempts[0].target == handler.name and attempts[0].outcome == DROPPED
        rescuers = [r.name for r in c.replicas if r.said(f"update {photo}: its handler died")]
        again = ", ".join(f"{a.target} {a.outcome}" for a in attempts[1:])
        by = f"{', '.join(rescuers)}'s rescue" if rescuers else "the replica it reached"
        FIGURES.append(
            f"webhook, killed handling a photo: its delivery to {handler.name} dropped; sent "
            f"again {len(attempts) - 1} times ({again}); answered 200 "
            f"{done.ended - killed:.2f} s after the kill, handled again by {by}"
        )
        for user in users:
            c.press(user, await c.draft(user), "Generate")
        await webhook_audit(
            c, database_url, users, presses=len(users), scenario="webhook: killed handling"
        )
        assert deliverer.outcomes().get(REFUSED, 0) >= 1


async def test_webhook_a_replica_killed_mid_upload_and_updates_sent_twice_change_nothing(
    database_url: str, tmp_path: Path
) -> None:
    async with cluster(database_url, tmp_path, webhook=True) as c:
        c.kie.finish_after = 0.5
        await c.start(3)
        deliverer = _deliverer(c)
        users = [FakeUser(id=7400 + i) for i in range(5)]
        # The first answer to each update of the first two users never reaches Telegram: it
        # sends each of them again after it was handled.
        deliverer.lossy_chats = {users[0].id, users[1].id}
        # Mid-upload: Telegram got the video; the answer never reaches the uploader.
        held_video = c.telegram.hold("sendVideo", after=True, times=1)
        await generate(c, users[:2])
        await held_video.wait(timeout=SETTLE)
        upload = c.telegram.calls_of("sendVideo")[0]
        worker = c.maker(upload.client, c.telegram_url)
        assert worker is not None
        cut = await _kill_worker(c, database_url, worker, "webhook, mid-upload")
        killed = worker.killed_at or 0.0
        held_video.release()
        # Users who write after the kill: every third request reaches the dead replica's port.
        for user in users[2:]:
            c.send_photo(user)
        await all_delivered(c, database_url, "webhook: killed mid-upload")
        for user in users[2:]:
            c.press(user, await c.draft(user), "Generate")
        uploaded = next(u for u in users[:2] if u.id == int(upload.params["chat_id"]))
        assert uploaded.id in cut, cut
        await until(
            lambda: bool(c.said_to(uploaded, LINKED)),
            SETTLE,
            "a link notice for the cut-off upload",
        )
        link = c.said_to(uploaded, LINKED)[0]
        FIGURES.append(
            f"webhook, killed mid-upload: {worker.name} killed; the link sent "
            f"{link.at - killed:.2f} s after the kill"
        )
        await webhook_audit(
            c,
            database_url,
            users,
            presses=len(users),
            scenario="webhook: killed mid-upload",
            cut_off=cut,
        )
        outcomes = deliverer.outcomes()
        # Each of the four updates (two photos, two presses) whose answer was lost came again
        # and changed nothing (one draft per photo, one create per press: the audit).
        assert outcomes.get(ANSWER_LOST) == 4
        assert outcomes.get(REFUSED, 0) >= 1
