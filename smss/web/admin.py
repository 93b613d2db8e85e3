"""The admin's pages: users and their roles, API tokens, the audit trail.

The same things ``smss user`` and ``smss token`` do, for an admin logged in
to the web interface; every change is recorded in the audit trail with who
made it.  The last admin cannot be demoted or deleted here (so someone can
still manage the users); ``smss user`` on the server can.  A new token is
shown once, on the page that answers the form, and never stored in a cookie.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Optional

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from smss.store import accounts, audit, paging, sessions
from smss.store.database import utcnow
from smss.web import passwords, security
from smss.web.accounts import MIN_PASSWORD, NAME
from smss.web.pages import flash, render
from smss.web.security import Who

router = APIRouter(include_in_schema=False)

Admin = Annotated[Who, Depends(security.admin)]


def _with_conn(request: Request, work, *args):
    def run():
        with request.app.state.pool.connection() as conn:
            return work(conn, *args)

    return run_in_threadpool(run)


def _users_context(request: Request, conn) -> dict:
    idle = request.app.state.settings.session_seconds
    return {"title": "Users", "users": accounts.users(conn), "roles": accounts.ROLES,
            "logins": sessions.active_by_user(conn, utcnow() - timedelta(seconds=idle)),
            "min_password": MIN_PASSWORD}


@router.get("/users")
async def users_page(request: Request, user: Admin) -> Response:
    context = await _with_conn(request, lambda conn: _users_context(request, conn))
    return render(request, "users.html", context, user=user, here="/users")


def _problem_with(name: str, password: str, again: str) -> Optional[str]:
    if name is not None and not NAME.match(name):
        return f"{name!r} is not a usable name (letters, digits, . _ @ -; at most 64)"
    if len(password) < MIN_PASSWORD:
        return f"A password needs at least {MIN_PASSWORD} characters."
    if password != again:
        return "The two passwords differ."
    return None


@router.post("/users")
async def add_user(request: Request, user: Admin) -> Response:
    form = await security.posted_form(request)
    name, role = form.get("name", "").strip(), form.get("role", "")
    problem = _problem_with(name, form.get("password", ""), form.get("again", ""))
    if role not in accounts.ROLES:
        problem = f"Unknown role {role!r}."
    if problem is None:
        existing = await _with_conn(request, accounts.get_user, name)
        if existing is not None:
            problem = f"User {name} exists."
    if problem:
        flash(request, "bad", problem)
        return RedirectResponse("/users", status_code=303)
    password_hash = await run_in_threadpool(passwords.hash_password, form["password"])
    await _with_conn(request, lambda conn: accounts.set_user(conn, name, password_hash, role,
                                                             actor=user.actor))
    flash(request, "ok", f"User {name} ({role}) created.")
    return RedirectResponse("/users", status_code=303)


@router.post("/users/{name}/role")
async def change_role(request: Request, user: Admin, name: str) -> Response:
    form = await security.posted_form(request)
    role = form.get("role", "")
    if role not in accounts.ROLES:
        flash(request, "bad", f"Unknown role {role!r}.")
        return RedirectResponse("/users", status_code=303)
    try:
        found = await _with_conn(request, lambda conn: accounts.set_role(
            conn, name, role, keep_an_admin=True, actor=user.actor))
    except accounts.LastAdmin:
        flash(request, "bad", f"{name} is the last admin: make another admin first.")
        return RedirectResponse("/users", status_code=303)
    flash(request, "ok" if found else "bad",
          f"{name} is now {role}." if found else f"No user {name}.")
    return RedirectResponse("/users", status_code=303)


@router.post("/users/{name}/password")
async def set_password(request: Request, user: Admin, name: str) -> Response:
    form = await security.posted_form(request)
    problem = _problem_with(None, form.get("password", ""), form.get("again", ""))
    existing = await _with_conn(request, accounts.get_user, name)
    if existing is None:
        problem = f"No user {name}."
    if problem:
        flash(request, "bad", problem)
        return RedirectResponse("/users", status_code=303)
    password_hash = await run_in_threadpool(passwords.hash_password, form["password"])
    await _with_conn(request, lambda conn: accounts.set_user(conn, name, password_hash,
                                                             actor=user.actor))
    flash(request, "ok", f"New password for {name}; their logins ended.")
    if name == user.name:
        return RedirectResponse("/login", status_code=303)  # this login ended too
    return RedirectResponse("/users", status_code=303)


@router.post("/users/{name}/delete")
async def delete_user(request: Request, user: Admin, name: str) -> Response:
    form = await security.posted_form(request)
    if form.get("confirm") != "yes":
        return render(request, "confirm.html", {
            "title": f"Delete user {name}?", "action": request.url.path,
            "question": f"Delete the user {name}? Their logins end at once.",
            "button": "Delete user", "back": "/users"}, user=user, here="/users")
    try:
        found = await _with_conn(request, lambda conn: accounts.delete_user(
            conn, name, keep_an_admin=True, actor=user.actor))
    except accounts.LastAdmin:
        flash(request, "bad", f"{name} is the last admin: make another admin first.")
        return RedirectResponse("/users", status_code=303)
    flash(request, "ok" if found else "bad", f"User {name} deleted." if found
          else f"No user {name}.")
    return RedirectResponse("/login" if name == user.name else "/users", status_code=303)


# -- tokens


async def _tokens_page(request: Request, user: Who, made: Optional[tuple] = None,
                       status: int = 200) -> Response:
    found = await _with_conn(request, accounts.tokens)
    return render(request, "tokens.html", {"title": "API tokens", "tokens": found,
                                           "roles": accounts.ROLES, "made": made},
                  user=user, here="/tokens", status=status)


@router.get("/tokens")
async def tokens_page(request: Request, user: Admin) -> Response:
    return await _tokens_page(request, user)


@router.post("/tokens")
async def add_token(request: Request, user: Admin) -> Response:
    form = await security.posted_form(request)
    name, role = form.get("name", "").strip(), form.get("role", "")
    problem = None
    if not NAME.match(name):
        problem = f"{name!r} is not a usable name (letters, digits, . _ @ -; at most 64)"
    elif role not in accounts.ROLES:
        problem = f"Unknown role {role!r}."
    elif any(t.name == name for t in await _with_conn(request, accounts.tokens)):
        problem = f"A token {name} exists; delete it first."
    if problem:
        flash(request, "bad", problem)
        return RedirectResponse("/tokens", status_code=303)
    token, token_hash = passwords.new_token()
    await _with_conn(request, lambda conn: accounts.add_token(conn, name, token_hash, role,
                                                              actor=user.actor))
    return await _tokens_page(request, user, made=(name, role, token))


@router.post("/tokens/{name}/delete")
async def delete_token(request: Request, user: Admin, name: str) -> Response:
    form = await security.posted_form(request)
    if form.get("confirm") != "yes":
        return render(request, "confirm.html", {
            "title": f"Delete token {name}?", "action": request.url.path,
            "question": f"Revoke the API token {name}? Applications using it are refused"
                        " at once.", "button": "Delete token", "back": "/tokens"},
            user=user, here="/tokens")
    found = await _with_conn(request, lambda conn: accounts.delete_token(conn, name,
                                                                         actor=user.actor))
    flash(request, "ok" if found else "bad", f"Token {name} deleted." if found
          else f"No token {name}.")
    return RedirectResponse("/tokens", status_code=303)


# -- the audit trail


@router.get("/audit")
async def audit_page(request: Request, user: Admin) -> Response:
    query = request.query_params
    before = after = None
    problems = []
    for name in ("before", "after"):
        if query.get(name):
            try:
                cursor = paging.Cursor.decode(query[name])
            except ValueError:
                problems.append("that page link is broken; showing the newest")
                continue
            before, after = (cursor, after) if name == "before" else (before, cursor)
    limit = request.app.state.settings.page_size
    page = await _with_conn(request, lambda conn: audit.page(conn, before=before, after=after,
                                                             limit=limit))
    return render(request, "audit.html", {"title": "Audit trail", "page": page, "base": "?",
                                          "problems": problems}, user=user, here="/audit",
                  status=400 if problems else 200)
