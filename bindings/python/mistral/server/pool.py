"""A bounded pool of sessions on one shared model, used as a prompt cache: an idle session keeps its context, and a
new request gets the idle session whose context shares the longest prefix with its prompt (a system prompt and tools
shared by many requests are evaluated once per session, not once per request)."""
from __future__ import annotations

import asyncio
from typing import List, Optional, Sequence

import mistral


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class Slot:
    """One session and what the server knows it holds: the prompt ids of its last request (the session holds at
    least those positions, plus the tokens it generated after them)."""

    def __init__(self, index: int, session: mistral.Session):
        self.index = index
        self.session = session
        self.held: List[int] = []
        self.last_used = 0

    def cached_for(self, prompt: Sequence[int]) -> int:
        """Positions of `prompt` this session keeps (the library always evaluates at least the last one)."""
        return min(common_prefix(self.held, prompt), max(len(prompt) - 1, 0))


class SessionPool:
    """`size` sessions; acquire() waits (asynchronously) for an idle one and picks the best prefix match."""

    def __init__(self, model: mistral.Model, size: int, n_ctx: int, threads: int, kv_type: str):
        self.slots = [Slot(i, mistral.Session(model, n_ctx=n_ctx, threads=threads, kv_type=kv_type))
                      for i in range(size)]
        self.idle = list(self.slots)
        self.clock = 0
        self._cond: Optional[asyncio.Condition] = None

    @property
    def cond(self) -> asyncio.Condition:
        """Made on first use, inside the server's event loop."""
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    @property
    def busy(self) -> int:
        """Sessions generating now."""
        return len(self.slots) - len(self.idle)

    async def acquire(self, prompt: Sequence[int]) -> Slot:
        async with self.cond:
            await self.cond.wait_for(lambda: bool(self.idle))
            # longest shared prefix first; among equals the least recently used, so a hot prefix is not evicted
            best = max(self.idle, key=lambda s: (s.cached_for(prompt), -s.last_used))
            self.idle.remove(best)
            return best

    async def release(self, slot: Slot, held: Optional[Sequence[int]]) -> None:
        """Gives the slot back; `held` is the prompt it now holds (None when its context is unknown: forgotten)."""
        self.clock += 1
        slot.last_used = self.clock
        slot.held = list(held) if held is not None else []
        if held is None:
            try:
                slot.session.reset()
            except mistral.MistralError:
                pass
        async with self.cond:
            self.idle.append(slot)
            self.cond.notify()

    def close(self) -> None:
        for s in self.slots:
            s.session.close()
