"""One video from start to end, as the command line makes it: start, wait, save."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx

from bot.core.download import TIMEOUT, save_video
from bot.core.failures import Failure
from bot.core.paid import create_once, prepare
from bot.core.progress import Progress, Stage
from bot.core.waiting import Pacing, wait_for_video
from bot.providers.base import Provider, VideoRequest
from bot.providers.errors import ProviderError
from bot.providers.http import USER_AGENT
from bot.providers.registry import BACKEND_NAMES


@dataclass
class Generation:
    """One request at one provider, and the provider's task once it exists."""

    provider: Provider
    request: VideoRequest
    progress: Progress
    retry_base: float = 1.0
    task_id: str | None = None

    async def start(self) -> str:
        """Prepare (free, retried) and create (paid: never twice for this request) the task."""
        name = BACKEND_NAMES.get(self.provider.name, self.provider.name)
        self.progress.stage(Stage.UPLOADING, name)
        prepared = await prepare(self.provider, self.request, base=self.retry_base)
        self.progress.stage(Stage.CREATING)

        async def lost(exc: ProviderError) -> None:
            self.progress.stage(Stage.SETTLING, Failure.UNCERTAIN.summary)

        self.task_id = await create_once(
            self.provider,
            prepared,
            self.request.external_id,
            base=self.retry_base,
            on_uncertain=lost,
        )
        return self.task_id

    async def wait(self, pacing: Pacing, patience: float) -> str:
        """The video's URL once the task ends; see `wait_for_video` for what else may end it."""
        assert self.task_id is not None, "start() first"
        done = await wait_for_video(self.provider, self.task_id, pacing, patience, self.progress)
        assert done.video_url is not None
        return done.video_url

    async def save(self, url: str, out: Path) -> int:
        """Download the video into `out` (whole or not at all); its size in bytes."""
        self.progress.stage(Stage.DOWNLOADING)
        headers = {"User-Agent": USER_AGENT}
        async with httpx.AsyncClient(
            timeout=TIMEOUT, headers=headers, follow_redirects=True
        ) as client:
            return await save_video(
                client,
                url,
                out,
                local_roots=self.provider.local_roots,
                counter=self.progress.transfer,
            )
