"""``comfyq credits`` and ``comfyq users limits``: balances and per-user limits, straight in the database."""
from __future__ import annotations

import click

from .cli_accounts import _in_app, users


@click.group()
def credits() -> None:
    """Grant, adjust and show credits."""


def _change(name: str, amount: int, kind: str, note: str | None) -> str:
    """Apply a grant or adjustment and describe the new balance."""
    from . import accounts
    from . import credits as ledger

    def change() -> str:
        user = accounts.get_user(name)
        ledger.change(user, amount, kind, note, None)
        return f"{name}: {amount:+d} credits ({kind}); balance {ledger.balance_of(user.id)}"

    return _in_app(change)


@credits.command("grant")
@click.argument("name")
@click.argument("amount", type=click.IntRange(min=1))
@click.option("--note", default=None, help="Why, as the ledger will show it.")
def credits_grant(name: str, amount: int, note: str | None) -> None:
    """Add AMOUNT credits to user NAME."""
    click.echo(_change(name, amount, "grant", note))


@credits.command("adjust", context_settings={"ignore_unknown_options": True})  # AMOUNT may be negative
@click.argument("name")
@click.argument("amount", type=int)
@click.option("--note", default=None, help="Why, as the ledger will show it.")
def credits_adjust(name: str, amount: int, note: str | None) -> None:
    """Add (or with a negative AMOUNT, remove) credits of user NAME; the balance never goes below zero."""
    click.echo(_change(name, amount, "adjustment", note))


@credits.command("show")
@click.argument("name")
@click.option("--last", default=20, show_default=True, help="How many ledger entries to list.")
def credits_show(name: str, last: int) -> None:
    """Show the balance of user NAME and their latest ledger entries."""
    from . import accounts
    from . import credits as ledger

    def lines() -> list[str]:
        user = accounts.get_user(name)
        rows = [f"{name}: balance {ledger.balance_of(user.id)}"]
        rows += [f"{e.created_at:%Y-%m-%d %H:%M:%S}  {e.kind:<10} {e.amount:+7d}  {e.job_id or '':<36}  {e.note or ''}"
                 for e in ledger.recent(user, last)]
        return rows

    for line in _in_app(lines):
        click.echo(line)


@users.command("limits")
@click.argument("name")
@click.option("--running", type=click.IntRange(min=1), help="Jobs queued or running at once.")
@click.option("--waiting", type=click.IntRange(min=0), help="Jobs pending or queued at once (0: no limit).")
@click.option("--rate", type=click.IntRange(min=0), help="Submissions per minute (0: no limit).")
@click.option("--clear", multiple=True, type=click.Choice(["running", "waiting", "rate"]),
              help="Drop this user's own value, so the role's or global one applies.")
def users_limits(name: str, running: int | None, waiting: int | None, rate: int | None,
                 clear: tuple[str, ...]) -> None:
    """Set or clear the limits of user NAME, then print the limits that apply."""
    from flask import current_app

    from . import accounts, limits

    fields = {"running": "max_running", "waiting": "max_waiting", "rate": "rate_per_minute"}
    given = {"running": running, "waiting": waiting, "rate": rate}
    values = {fields[k]: v for k, v in given.items() if v is not None} | {fields[k]: None for k in clear}

    def apply() -> str:
        user = limits.set_limits(accounts.get_user(name), values)
        shown = limits.describe(user, current_app.config)
        return ", ".join(f"{key} {shown[key]} ({shown['sources'][key]})" for key in limits.FIELDS)

    click.echo(f"{name}: {_in_app(apply)}")
