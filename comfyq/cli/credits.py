"""``comfyq credits``: grant, adjust and show balances, straight in the database."""
from __future__ import annotations

import click

from .accounts import in_app


@click.group()
def credits() -> None:
    """Grant, adjust and show credits."""


def _change(name: str, amount: int, kind: str, note: str | None) -> str:
    """Apply a grant or adjustment and describe the new balance."""
    from ..accounts import users as accounts
    from ..accounts import credits as ledger

    def change() -> str:
        user = accounts.get_user(name)
        ledger.change(user, amount, kind, note, None)
        return f"{name}: {amount:+d} credits ({kind}); balance {ledger.balance_of(user.id)}"

    return in_app(change)


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
@click.option("--last", type=click.IntRange(min=1), default=20, show_default=True,
              help="How many ledger entries to list.")
def credits_show(name: str, last: int) -> None:
    """Show the balance of user NAME and their latest ledger entries."""
    from ..accounts import users as accounts
    from ..accounts import credits as ledger
    from ..db.timestamps import isoformat

    def lines() -> list[str]:
        user = accounts.get_user(name)
        rows = [f"{name}: balance {ledger.balance_of(user.id)}"]
        rows += [f"{isoformat(e.created_at)}  {e.kind:<10} {e.amount:+7d}  {e.job_id or '':<36}  {e.note or ''}"
                 for e in ledger.recent(user, last)]
        return rows

    for line in in_app(lines):
        click.echo(line)
