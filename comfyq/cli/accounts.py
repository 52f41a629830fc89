"""``comfyq users`` and ``comfyq keys``: manage accounts and their limits straight in the database."""
from __future__ import annotations

from typing import Any, Callable

import click

from ..config.settings import LIMIT_NAMES, ROLES


def in_app(action: Callable[[], Any]) -> Any:
    """Run ``action`` in an app context; print a domain error as a click error."""
    from .. import create_app
    from ..errors import ComfyqError

    with create_app().app_context():
        try:
            return action()
        except ComfyqError as exc:
            raise click.ClickException(exc.message) from exc


@click.group()
def users() -> None:
    """Create, list and disable users."""


@users.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--level", type=click.Choice(["novice", "expert"]), default="novice", show_default=True)
@click.option("--teacher", default=None, help="The teacher of a student.")
@click.option("--credits", "amount", type=click.IntRange(min=0), default=0, help="Credits to grant at once.")
@click.option("--key/--no-key", default=True, show_default=True, help="Also issue an API key and print it.")
def users_create(name: str, role: str, level: str, teacher: str | None, amount: int, key: bool) -> None:
    """Create user NAME (and print a fresh API key for it)."""
    from ..accounts import users as accounts, credits

    def create() -> str | None:
        user = accounts.create_user(name, role, level, teacher)
        if amount:
            credits.change(user, amount, "grant", "granted at creation", None)
        return accounts.issue_key(user, "created with the user")[1] if key else None

    plain = in_app(create)
    click.echo(f"created {role} {name}" + (f"; API key (shown once): {plain}" if plain else ""))


@users.command("list")
def users_list() -> None:
    """List users: name, role, level, teacher, state, balance."""
    from ..accounts import users as accounts

    def rows() -> list[str]:
        found = accounts.list_users()
        names = {u.id: u.name for u in found}
        return [f"{u.name:<24} {u.role:<8} {u.level:<7} {names.get(u.teacher_id or '', '-'):<16} "
                f"{'disabled' if u.disabled else 'enabled':<8} {u.balance:>9}" for u in found]

    for row in in_app(rows):
        click.echo(row)


@users.command("disable")
@click.argument("name")
def users_disable(name: str) -> None:
    """Disable user NAME: their keys stop working at once."""
    from ..accounts import users as accounts

    in_app(lambda: accounts.set_disabled(name, True))
    click.echo(f"disabled {name}")


@users.command("limits")
@click.argument("name")
@click.option("--running", type=click.IntRange(min=1), help="Jobs queued or running at once.")
@click.option("--waiting", type=click.IntRange(min=0), help="Jobs pending or queued at once (0: no limit).")
@click.option("--rate", type=click.IntRange(min=0), help="Submissions per minute (0: no limit).")
@click.option("--weight", type=click.IntRange(min=1), help="Fair-share weight (GPU slots per one of a weight-1 user).")
@click.option("--clear", multiple=True, type=click.Choice(list(LIMIT_NAMES)),
              help="Drop this user's own value, so the role's or global one applies.")
def users_limits(name: str, running: int | None, waiting: int | None, rate: int | None, weight: int | None,
                 clear: tuple[str, ...]) -> None:
    """Set or clear the limits of user NAME, then print the limits that apply."""
    from flask import current_app

    from ..accounts import users as accounts, limits
    from ..submission import admission

    given = {"running": running, "waiting": waiting, "rate": rate, "weight": weight}
    values = {LIMIT_NAMES[k]: v for k, v in given.items() if v is not None} | {LIMIT_NAMES[k]: None for k in clear}

    def apply() -> str:
        user = limits.set_limits(accounts.get_user(name), values)
        admission.admit_and_dispatch(user.id)  # a raised cap lets pending jobs in now
        shown = limits.describe(user, current_app.config)
        return ", ".join(f"{key} {shown[key]} ({shown['sources'][key]})" for key in limits.FIELDS)

    click.echo(f"{name}: {in_app(apply)}")


@users.command("bootstrap")
def users_bootstrap() -> None:
    """Create user admin with a key if there are no users yet, and print the key."""
    from ..accounts import users as accounts

    plain = in_app(accounts.bootstrap_admin)
    if plain:
        click.echo(f"created user admin; its API key (shown once, keep it): {plain}")


@click.group()
def keys() -> None:
    """Issue and revoke API keys."""


@keys.command("issue")
@click.argument("name")
@click.option("--label", default=None, help="What the key is for.")
def keys_issue(name: str, label: str | None) -> None:
    """Issue an API key for user NAME and print it (shown once)."""
    from ..accounts import users as accounts

    plain = in_app(lambda: accounts.issue_key(accounts.get_user(name), label)[1])
    click.echo(plain)


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke the API key whose id is KEY_ID (the 12 characters after 'cq_')."""
    from ..accounts import users as accounts

    in_app(lambda: accounts.revoke_key(key_id.removeprefix("cq_")[:12]))
    click.echo(f"revoked {key_id[:15]}")
