"""Numbered schema migrations; `PRAGMA user_version` records how many have run."""

from __future__ import annotations

MIGRATIONS: tuple[tuple[str, ...], ...] = (
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
)
