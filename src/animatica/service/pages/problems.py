"""What a page request can end with besides a page: a trip to sign in, or a problem page.

Both are exceptions so that dependencies and handlers can stop anywhere; `install` turns them
into a redirect or an HTML page (or JSON for the pages' own scripts).
"""

from fastapi import Request

from animatica.service.errors import ServiceError


class SignInRequired(Exception):
    """The page needs a signed-in user; the browser is sent to sign in and brought back."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class PageProblem(ServiceError):
    """An error shown to a person: a status, a short title and one sentence on what to do."""

    def __init__(self, status_code: int, message: str, title: str = "Something went wrong") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.title = title


def wants_json(request: Request) -> bool:
    """The pages' scripts ask for JSON; a plain form post or link gets HTML."""
    return "application/json" in request.headers.get("accept", "")
