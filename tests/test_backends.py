"""Each backend is declared in one place; settings, secrets and models derive from that."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.config import Settings
from bot.logs import RedactingFormatter
from bot.providers.registry import BACKENDS, CATALOGUE, catalogue_of, model_table


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def secret_fields() -> list[str]:
    return [
        name for name, info in Settings.model_fields.items() if "SecretStr" in str(info.annotation)
    ]


def test_every_backend_section_is_part_of_the_settings() -> None:
    for backend in BACKENDS:
        assert issubclass(Settings, backend.settings), backend.name
        assert set(backend.settings.model_fields) <= set(Settings.model_fields)


def test_every_secret_is_redacted_without_a_list_to_keep() -> None:
    names = secret_fields()
    assert {"telegram_bot_token", "kie_api_key", "kling_secret_key", "tuzi_api_key"} <= set(names)
    values = {name: f"secret-{n:02d}-{'x' * 12}" for n, name in enumerate(names)}
    loaded = settings(**values)
    assert sorted(loaded.secrets()) == sorted(values.values())
    formatter = RedactingFormatter("%(message)s", loaded.secrets())
    assert not any(
        value in formatter.redact(" ".join(values.values())) for value in values.values()
    )


@pytest.mark.parametrize("name", [*secret_fields(), "default_model", "preview_backend"])
def test_an_empty_value_leaves_an_optional_setting_unset(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name.upper(), "  ")
    assert getattr(Settings(_env_file=None), name) is None  # type: ignore[call-arg]


def test_which_backends_are_offered() -> None:
    assert settings().configured_backends() == ["preview"]
    assert settings(kie_api_key="k").configured_backends() == ["kie"]
    both = settings(kie_api_key="k", kling_api_key="k", preview_backend=True)
    assert both.configured_backends() == ["kie", "kling", "preview"]
    assert settings(kling_access_key="a", kling_secret_key="s").configured_backends() == ["kling"]
    assert settings(preview_backend=False).configured_backends() == []
    half = settings(telegram_bot_token="1:x", kling_access_key="a")
    assert half.problems() == ["Set both KLING_ACCESS_KEY and KLING_SECRET_KEY (or KLING_API_KEY)."]


def test_model_ids_and_codes_are_unique_and_named_by_their_backend() -> None:
    assert len({spec.id for spec in CATALOGUE}) == len(CATALOGUE)
    assert len({spec.code for spec in CATALOGUE}) == len(CATALOGUE)
    for backend in BACKENDS:
        assert backend.models and all(spec.backend == backend.name for spec in backend.models)
    offered = catalogue_of(["kie", "tuzi"])
    assert offered.label("tuzi:kling-v1-6") == "Kling 1.6 · tu-zi"
    assert offered.title("kie") == "kie.ai"


def test_urls_lose_their_trailing_slash() -> None:
    loaded = settings(kie_api_url="https://kie.test/", tuzi_api_url="https://t.test/kling/")
    assert (loaded.kie_api_url, loaded.tuzi_api_url) == ("https://kie.test", "https://t.test/kling")
    assert isinstance(settings(kie_api_key="k").kie_api_key, SecretStr)


def test_the_readme_model_table_is_the_catalogue() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    shown = readme.split("<!-- models -->\n", 1)[1].split("\n<!-- /models -->", 1)[0]
    assert shown == model_table(), "update README.md from bot.providers.registry.model_table()"


def test_the_database_url_and_its_password_are_secrets() -> None:
    url = "postgresql://bot:pa55-w0rd-x@db.example:5432/kling"
    loaded = settings(telegram_bot_token="1:x", database_url=url)
    assert url in loaded.secrets() and "pa55-w0rd-x" in loaded.secrets()
    line = RedactingFormatter("%(message)s", loaded.secrets()).redact(
        f"connecting to {url}; password authentication failed ('pa55-w0rd-x')"
    )
    assert "pa55-w0rd-x" not in line and "db.example" not in line
    assert loaded.problems() == []
    wrong = settings(telegram_bot_token="1:x", database_url="mysql://bot:pw@db/kling")
    assert wrong.problems() == [
        "DATABASE_URL must start with postgresql:// (or leave it unset: SQLite)."
    ]
