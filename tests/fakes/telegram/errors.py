"""The Bot API's error answers, and the descriptions the fake shares between modules."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from starlette.responses import HTMLResponse, JSONResponse, Response

DEFAULT_FAULT = "Bad Request: test fault"
UNAVAILABLE = "Service Unavailable"
TOO_LARGE = "Request Entity Too Large"
# api.telegram.org's nginx answers these itself, with an HTML page instead of JSON.
NGINX_STATUSES = frozenset({502, 503, 504})


class ApiError(Exception):
    """An error reply of the Bot API."""

    def __init__(
        self, status: int, description: str, retry_after: int | None = None, *, page: bool = False
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after
        self.page = page

    def response(self) -> Response:
        """Return the Bot API error body (or nginx's HTML page) with the matching HTTP status."""
        if self.page:
            title = f"{self.status} {self.description}"
            html_page = (
                f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
                f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n"
                "</body>\r\n</html>\r\n"
            )
            return HTMLResponse(html_page, status_code=self.status)
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return JSONResponse(body, status_code=self.status)


def bad_request(description: str) -> ApiError:
    """Return a 400 whose description is Telegram's "Bad Request: " and `description`."""
    return ApiError(400, f"Bad Request: {description}")


def http_phrase(status: int) -> str:
    """Return the HTTP reason phrase of `status` ("Server Error" for unknown ones)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Server Error"
