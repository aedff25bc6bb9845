"""Numbered schema migrations, the same steps for both databases.

SQLite records how many have run in `PRAGMA user_version`, PostgreSQL in `schema_migrations`.
Migration n is the same change on both, so one schema version means one schema; a new
migration is added to both lists.
"""

from __future__ import annotations

Migrations = tuple[tuple[str, ...], ...]

SQLITE_MIGRATIONS: Migrations = (
    # 1: drafts, tasks, user settings
    (
        """
        CREATE TABLE drafts (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL,
            chat_id INTEGER NOT NULL,
            source_message_id INTEGER NOT NULL,
            message_id INTEGER,
            image_file_id TEXT NOT NULL,
            prompt TEXT,
            options TEXT NOT NULL,
            lang TEXT NOT NULL,
            state TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )
        """,
        "CREATE INDEX drafts_by_chat ON drafts (chat_id, user_id, state)",
        """
        CREATE TABLE tasks (
            id INTEGER PRIMARY KEY,
            draft_id INTEGER UNIQUE REFERENCES drafts (id),
            user_id INTEGER NOT NULL,
            chat_id INTEGER NOT NULL,
            source_message_id INTEGER NOT NULL,
            status_message_id INTEGER,
            image_file_id TEXT NOT NULL,
            prompt TEXT NOT NULL,
            options TEXT NOT NULL,
            lang TEXT NOT NULL,
            state TEXT NOT NULL,
            provider_task_id TEXT,
            callback_secret TEXT NOT NULL,
            result_url TEXT,
            error TEXT,
            error_detail TEXT,
            polls INTEGER NOT NULL DEFAULT 0,
            next_poll_at REAL,
            created_at REAL NOT NULL,
            submitted_at REAL,
            finished_at REAL,
            delivered_at REAL,
            updated_at REAL NOT NULL
        )
        """,
        "CREATE INDEX tasks_by_user ON tasks (user_id, id)",
        "CREATE INDEX tasks_due ON tasks (next_poll_at) WHERE next_poll_at IS NOT NULL",
        """
        CREATE TABLE user_settings (
            user_id INTEGER PRIMARY KEY,
            language TEXT,
            options TEXT,
            updated_at REAL NOT NULL
        )
        """,
    ),
    # 2: albums (more than one image per draft and task)
    (
        "ALTER TABLE drafts ADD COLUMN extra_images TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE drafts ADD COLUMN media_group_id TEXT",
        "CREATE UNIQUE INDEX drafts_by_album ON drafts (chat_id, media_group_id)",
        "ALTER TABLE tasks ADD COLUMN extra_images TEXT NOT NULL DEFAULT '[]'",
    ),
    # 3: reliability: the moment a paid call began, retries, chats that blocked the bot
    (
        "ALTER TABLE tasks ADD COLUMN create_started_at REAL",
        "ALTER TABLE tasks ADD COLUMN retried_as INTEGER",
        "CREATE INDEX tasks_by_state ON tasks (state)",
        """
        CREATE TABLE chats (
            chat_id INTEGER PRIMARY KEY,
            blocked_at REAL
        )
        """,
    ),
    # 4: the moment a video upload to Telegram began
    ("ALTER TABLE tasks ADD COLUMN sending_at REAL",),
    # 5: how long finished generations took, to learn the poll schedule from
    (
        """
        CREATE TABLE run_times (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            seconds REAL NOT NULL,
            finished_at REAL NOT NULL
        )
        """,
        "CREATE INDEX run_times_by_kind ON run_times (kind, id)",
    ),
    # 6: leases: who is submitting or delivering a task; `next_poll_at` is when the lease ends
    (
        "ALTER TABLE tasks ADD COLUMN lease_owner TEXT",
        # Tasks left mid-way by an older version are due now: the sweep takes them over.
        """
        UPDATE tasks SET next_poll_at = updated_at
        WHERE state IN ('submitting', 'delivering') AND next_poll_at IS NULL
        """,
    ),
    # 7: Telegram updates being handled or handled, so that none is handled twice
    (
        """
        CREATE TABLE updates (
            update_id INTEGER PRIMARY KEY,
            holder TEXT NOT NULL,
            until REAL NOT NULL,
            handled_at REAL
        )
        """,
        "CREATE INDEX updates_by_handled ON updates (handled_at)",
    ),
    # 8: what several processes share: rate limits (a backend's, Telegram's), callbacks heard
    (
        """
        CREATE TABLE rate_slots (
            id INTEGER PRIMARY KEY,
            gate TEXT NOT NULL,
            at REAL NOT NULL
        )
        """,
        "CREATE INDEX rate_slots_by_gate ON rate_slots (gate, at)",
        # When the provider's callback for a task came, whichever process it reached.
        "ALTER TABLE tasks ADD COLUMN callback_at REAL",
    ),
    # 9: when the bot last edited a message in each chat (progress edits, across replicas)
    ("ALTER TABLE chats ADD COLUMN edited_at REAL",),
    # 10: when an album's draft is to be shown (its photos stopped arriving), by any process
    ("ALTER TABLE drafts ADD COLUMN show_at REAL",),
    # 11: the update itself, so that another process can handle it if its holder died; a
    # photo's draft found by its message, so that handling it again makes no second one
    (
        "ALTER TABLE updates ADD COLUMN body TEXT",
        "CREATE INDEX drafts_by_photo ON drafts (chat_id, source_message_id)",
    ),
    # 12: what handling an update sent, so that handling it again does not send it twice
    (
        """
        CREATE TABLE update_answers (
            update_id INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            request TEXT NOT NULL,
            answer TEXT NOT NULL,
            PRIMARY KEY (update_id, seq)
        )
        """,
    ),
    # 13: what one process found out about a backend that all should know
    (
        """
        CREATE TABLE backend_notes (
            backend TEXT PRIMARY KEY,
            callbacks_lost_at REAL
        )
        """,
    ),
    # 14: when the delivery's current round began (its day of retries counts from it)
    ("ALTER TABLE tasks ADD COLUMN delivery_began_at REAL",),
)

# PostgreSQL: 64-bit ids (Telegram user, chat and message ids pass 2^31), identity keys,
# timestamps as float8 epoch seconds (exact to the microsecond; never REAL, a float4 whose
# 24-bit mantissa moves in steps of 128 s at today's epoch) and JSONB for the option documents.
POSTGRES_MIGRATIONS: Migrations = (
    # 1: drafts, tasks, user settings
    (
        """
        CREATE TABLE drafts (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            user_id BIGINT NOT NULL,
            chat_id BIGINT NOT NULL,
            source_message_id BIGINT NOT NULL,
            message_id BIGINT,
            image_file_id TEXT NOT NULL,
            prompt TEXT,
            options JSONB NOT NULL,
            lang TEXT NOT NULL,
            state TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL
        )
        """,
        "CREATE INDEX drafts_by_chat ON drafts (chat_id, user_id, state)",
        """
        CREATE TABLE tasks (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            draft_id BIGINT UNIQUE REFERENCES drafts (id),
            user_id BIGINT NOT NULL,
            chat_id BIGINT NOT NULL,
            source_message_id BIGINT NOT NULL,
            status_message_id BIGINT,
            image_file_id TEXT NOT NULL,
            prompt TEXT NOT NULL,
            options JSONB NOT NULL,
            lang TEXT NOT NULL,
            state TEXT NOT NULL,
            provider_task_id TEXT,
            callback_secret TEXT NOT NULL,
            result_url TEXT,
            error TEXT,
            error_detail TEXT,
            polls INTEGER NOT NULL DEFAULT 0,
            next_poll_at DOUBLE PRECISION,
            created_at DOUBLE PRECISION NOT NULL,
            submitted_at DOUBLE PRECISION,
            finished_at DOUBLE PRECISION,
            delivered_at DOUBLE PRECISION,
            updated_at DOUBLE PRECISION NOT NULL
        )
        """,
        "CREATE INDEX tasks_by_user ON tasks (user_id, id)",
        "CREATE INDEX tasks_due ON tasks (next_poll_at) WHERE next_poll_at IS NOT NULL",
        """
        CREATE TABLE user_settings (
            user_id BIGINT PRIMARY KEY,
            language TEXT,
            options JSONB,
            updated_at DOUBLE PRECISION NOT NULL
        )
        """,
    ),
    # 2: albums (more than one image per draft and task)
    (
        "ALTER TABLE drafts ADD COLUMN extra_images JSONB NOT NULL DEFAULT '[]'",
        "ALTER TABLE drafts ADD COLUMN media_group_id TEXT",
        "CREATE UNIQUE INDEX drafts_by_album ON drafts (chat_id, media_group_id)",
        "ALTER TABLE tasks ADD COLUMN extra_images JSONB NOT NULL DEFAULT '[]'",
    ),
    # 3: reliability: the moment a paid call began, retries, chats that blocked the bot
    (
        "ALTER TABLE tasks ADD COLUMN create_started_at DOUBLE PRECISION",
        "ALTER TABLE tasks ADD COLUMN retried_as BIGINT",
        "CREATE INDEX tasks_by_state ON tasks (state)",
        """
        CREATE TABLE chats (
            chat_id BIGINT PRIMARY KEY,
            blocked_at DOUBLE PRECISION
        )
        """,
    ),
    # 4: the moment a video upload to Telegram began
    ("ALTER TABLE tasks ADD COLUMN sending_at DOUBLE PRECISION",),
    # 5: how long finished generations took, to learn the poll schedule from
    (
        """
        CREATE TABLE run_times (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            kind TEXT NOT NULL,
            seconds DOUBLE PRECISION NOT NULL,
            finished_at DOUBLE PRECISION NOT NULL
        )
        """,
        "CREATE INDEX run_times_by_kind ON run_times (kind, id)",
    ),
    # 6: leases: who is submitting or delivering a task; `next_poll_at` is when the lease ends
    (
        "ALTER TABLE tasks ADD COLUMN lease_owner TEXT",
        # Tasks left mid-way by an older version are due now: the sweep takes them over.
        """
        UPDATE tasks SET next_poll_at = updated_at
        WHERE state IN ('submitting', 'delivering') AND next_poll_at IS NULL
        """,
    ),
    # 7: Telegram updates being handled or handled, so that none is handled twice
    (
        """
        CREATE TABLE updates (
            update_id BIGINT PRIMARY KEY,
            holder TEXT NOT NULL,
            until DOUBLE PRECISION NOT NULL,
            handled_at DOUBLE PRECISION
        )
        """,
        "CREATE INDEX updates_by_handled ON updates (handled_at)",
    ),
    # 8: what several processes share: rate limits (a backend's, Telegram's), callbacks heard
    (
        """
        CREATE TABLE rate_slots (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            gate TEXT NOT NULL,
            at DOUBLE PRECISION NOT NULL
        )
        """,
        "CREATE INDEX rate_slots_by_gate ON rate_slots (gate, at)",
        # When the provider's callback for a task came, whichever process it reached.
        "ALTER TABLE tasks ADD COLUMN callback_at DOUBLE PRECISION",
    ),
    # 9: when the bot last edited a message in each chat (progress edits, across replicas)
    ("ALTER TABLE chats ADD COLUMN edited_at DOUBLE PRECISION",),
    # 10: when an album's draft is to be shown (its photos stopped arriving), by any process
    ("ALTER TABLE drafts ADD COLUMN show_at DOUBLE PRECISION",),
    # 11: the update itself, so that another process can handle it if its holder died; a
    # photo's draft found by its message, so that handling it again makes no second one
    (
        "ALTER TABLE updates ADD COLUMN body TEXT",
        "CREATE INDEX drafts_by_photo ON drafts (chat_id, source_message_id)",
    ),
    # 12: what handling an update sent, so that handling it again does not send it twice
    (
        """
        CREATE TABLE update_answers (
            update_id BIGINT NOT NULL,
            seq INTEGER NOT NULL,
            request TEXT NOT NULL,
            answer TEXT NOT NULL,
            PRIMARY KEY (update_id, seq)
        )
        """,
    ),
    # 13: what one process found out about a backend that all should know
    (
        """
        CREATE TABLE backend_notes (
            backend TEXT PRIMARY KEY,
            callbacks_lost_at DOUBLE PRECISION
        )
        """,
    ),
    # 14: when the delivery's current round began (its day of retries counts from it)
    ("ALTER TABLE tasks ADD COLUMN delivery_began_at DOUBLE PRECISION",),
)
