"""Sign in, sign up, sign out and the Terms of Service.

Errors are shown next to the form, in the words the API uses ("Invalid credentials",
"Passwords don't match", "Username already exists"), and the form keeps what was typed
except the passwords.
"""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError

from animatica.errors import AnimaticaError
from animatica.service import accounts
from animatica.service.deps import Ctx
from animatica.service.errors import Conflict
from animatica.service.pages.sessions import CsrfChecked, MaybeViewer, safe_next, sign_in, sign_out
from animatica.service.pages.views import redirect, render
from animatica.service.ratelimit import RetryLater
from animatica.service.schemas import Credentials

router = APIRouter(include_in_schema=False)

USERNAME_RULE = "3 to 64 letters, digits or . _ @ + -"
PASSWORD_RULE = "at least 8 characters"


def signup_errors(username: str, password: str, confirm: str, terms: str) -> dict[str, str]:
    """What is wrong with a sign-up form, by field: the API's own rules, phrased for a person."""
    errors: dict[str, str] = {}
    try:
        Credentials(username=username, password=password)
    except ValidationError as error:
        fields = {str(item["loc"][0]) for item in error.errors() if item["loc"]}
        messages = {
            "username": f"Choose a username of {USERNAME_RULE}.",
            "password": f"Choose a password of {PASSWORD_RULE}.",
        }
        errors.update({name: messages[name] for name in fields if name in messages})
    if password != confirm:
        errors["confirm"] = "Passwords don't match"
    if terms != "accepted":
        errors["terms"] = "Accept the Terms of Service to create an account."
    return errors


@router.get("/")
def home(user: MaybeViewer) -> Response:
    return redirect("/create" if user else "/signin")


@router.get("/signin")
def signin_page(request: Request, ctx: Ctx, user: MaybeViewer, next: str = "") -> Response:
    if user is not None:
        return redirect(safe_next(next))
    return render(request, ctx, "auth.html", None, mode="signin", next=safe_next(next), form={}, errors={})


@router.post("/signin", dependencies=[CsrfChecked])
def signin_submit(
    request: Request,
    ctx: Ctx,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    target = safe_next(next)
    username = username.strip()
    response = redirect(target, "signed_in")
    try:
        if not username or len(password) < 8:
            raise AnimaticaError("Invalid credentials")
        sign_in(ctx, request, response, username, password)
    except AnimaticaError as error:
        retry = error if isinstance(error, RetryLater) else None  # too many attempts, or busy
        page = render(
            request,
            ctx,
            "auth.html",
            None,
            status_code=retry.status_code if retry else 401,
            mode="signin",
            next=target,
            form={"username": username},
            errors={"form": str(error)},
        )
        page.headers.update(retry.headers if retry else {})
        return page
    return response


@router.get("/signup")
def signup_page(request: Request, ctx: Ctx, user: MaybeViewer, next: str = "") -> Response:
    if user is not None:
        return redirect(safe_next(next))
    return render(request, ctx, "auth.html", None, mode="signup", next=safe_next(next), form={}, errors={})


@router.post("/signup", dependencies=[CsrfChecked])
def signup_submit(
    request: Request,
    ctx: Ctx,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
    terms: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    username = username.strip()
    errors = signup_errors(username, password, confirm, terms)
    retry: RetryLater | None = None
    if not errors:
        try:
            accounts.signup(ctx.db, username, password, ctx.settings.free_credits)
        except Conflict:
            errors["username"] = "Username already exists"
        except RetryLater as busy:
            retry, errors["form"] = busy, str(busy)
    if errors:
        status_code = 409 if "Username already exists" in errors.values() else 422
        page = render(
            request,
            ctx,
            "auth.html",
            None,
            status_code=retry.status_code if retry else status_code,
            mode="signup",
            next=safe_next(next),
            form={"username": username, "terms": terms == "accepted"},
            errors=errors,
        )
        page.headers.update(retry.headers if retry else {})
        return page
    response = redirect(safe_next(next), "welcome")
    sign_in(ctx, request, response, username, password)
    return response


@router.post("/signout", dependencies=[CsrfChecked])
def signout(request: Request, ctx: Ctx) -> Response:
    response = redirect("/signin", "signed_out")
    sign_out(ctx, request, response)
    return response


@router.get("/terms")
def terms(request: Request, ctx: Ctx, user: MaybeViewer) -> Response:
    return render(request, ctx, "terms.html", user)
