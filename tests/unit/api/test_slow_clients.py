"""BodyReader in the event loop: the budget that bodies still arriving share, and what it frees."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from comfyq.api.slow_clients import BodyReader, BodyRefused

SCOPE = {"type": "http", "method": "POST", "headers": []}


class Trickle:
    """A client's body: some bytes at once, then the rest when ``go`` is set."""

    def __init__(self, first: bytes, rest: bytes = b"") -> None:
        self.messages = [{"type": "http.request", "body": first, "more_body": True}]
        self.rest, self.go = rest, asyncio.Event()

    async def __call__(self) -> dict[str, Any]:
        if self.messages:
            return self.messages.pop(0)
        await self.go.wait()
        return {"type": "http.request", "body": self.rest, "more_body": False}


def test_bodies_past_the_budget_are_refused_and_finished_ones_free_it() -> None:
    async def scenario() -> None:
        reader = BodyReader(limit=100, read_timeout=5, deadline=10, budget=250)
        slow = [Trickle(b"x" * 90, b"y" * 10) for _ in range(2)]
        reading = [asyncio.create_task(reader.read(SCOPE, client)) for client in slow]
        await asyncio.sleep(0)  # both have their first 90 bytes
        while reader.held < 180:
            await asyncio.sleep(0.01)
        with pytest.raises(BodyRefused) as refused:
            await reader.read(SCOPE, Trickle(b"z" * 80))
        assert refused.value.status == 503 and "too many request bodies at once" in refused.value.message
        assert reader.held == 180  # the refused body's bytes were never counted
        for client in slow:
            client.go.set()
        assert await asyncio.gather(*reading) == [b"x" * 90 + b"y" * 10] * 2
        assert reader.held == 0
        third = Trickle(b"z" * 80, b"!")
        third.go.set()
        assert await reader.read(SCOPE, third) == b"z" * 80 + b"!"

    asyncio.run(scenario())


def test_the_default_budget_is_four_of_the_largest_bodies() -> None:
    assert BodyReader(limit=1000, read_timeout=1, deadline=2).budget == 4000
