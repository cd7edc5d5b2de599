"""Serving mechanics for the demo, without Gradio: lanes that run the work on a few threads while the
requests waiting for them hold none, served in turn by session."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import sys
import threading
from collections import Counter, OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional

__all__ = ["Busy", "Lane", "low_priority"]


class Busy(ValueError):
    """A request refused because its lane, or its session's share of the lane, is full; the message says which."""


def low_priority() -> None:
    """Lower the calling thread's CPU priority (nice 10), so that its work yields to everyone else's."""
    if sys.platform.startswith("linux"):  # Linux sets the priority of one thread; elsewhere it would be the process's
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


class Lane:
    """Runs blocking calls on ``workers`` threads; a request waiting for one is a coroutine, holding no thread.

    A free worker goes to the sessions in turn (round robin), so a session with many requests waiting gets one
    turn in each round, not the whole lane. ``capacity`` bounds the requests the lane holds (running and
    waiting; None: bounded by whoever admits them) and ``per_session`` how many of them one session may hold;
    a request beyond either is refused at once with :class:`Busy`. Use it from one event loop.
    """

    def __init__(self, name: str, workers: int, capacity: Optional[int] = None, per_session: Optional[int] = None,
                 what: str = "requests", initializer: Optional[Callable[[], None]] = None):
        if workers < 1 or (capacity is not None and capacity < workers) or (per_session is not None and per_session < 1):
            raise ValueError(f"lane {name}: need workers >= 1, capacity >= workers and per_session >= 1, got "
                             f"{workers}, {capacity}, {per_session}")
        self.name, self.workers, self.capacity, self.per_session, self.what = name, workers, capacity, per_session, what
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=name, initializer=initializer)
        self._free = workers
        self._turns: OrderedDict[str, deque[asyncio.Future]] = OrderedDict()  # waiting, by session, in turn order
        self._held: Counter[str] = Counter()  # requests running or waiting, by session

    @property
    def held(self) -> int:
        """Requests in the lane now, running or waiting."""
        return sum(self._held.values())

    async def run(self, session: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` on one of the lane's threads in ``session``'s turn, with the caller's context
        variables; raises :class:`Busy` at once when the lane or the session's share of it is full."""
        if self.per_session is not None and self._held[session] >= self.per_session:
            raise Busy(f"You already have {self._held[session]} {self.what} in progress; wait for one to finish.")
        if self.capacity is not None and self.held >= self.capacity:
            raise Busy(f"The server is busy with {self.what} ({self.held} in progress); try again in a minute.")
        self._held[session] += 1
        try:
            await self._turn(session)
        except BaseException:
            self._let_go(session)
            raise
        loop = asyncio.get_running_loop()
        # The worker is given back when the work ends, not when its caller stops waiting (a closed connection).
        work = self._pool.submit(contextvars.copy_context().run, functools.partial(fn, *args, **kwargs))
        work.add_done_callback(lambda _: self._finish_soon(loop, session))
        return await asyncio.wrap_future(work)

    def _finish_soon(self, loop: asyncio.AbstractEventLoop, session: str) -> None:
        try:
            loop.call_soon_threadsafe(self._finish, session)
        except RuntimeError:  # the loop has closed (the server stopped): nobody is waiting any more
            pass

    async def _turn(self, session: str) -> None:
        if self._free and not self._turns:
            self._free -= 1
            return
        turn = asyncio.get_running_loop().create_future()
        self._turns.setdefault(session, deque()).append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():  # given a worker as it was cancelled: pass the worker on
                self._next()
            else:
                turns = self._turns.get(session)
                if turns is not None and turn in turns:
                    turns.remove(turn)
                    if not turns:
                        del self._turns[session]
            raise

    def _finish(self, session: str) -> None:
        self._let_go(session)
        self._next()

    def _let_go(self, session: str) -> None:
        self._held[session] -= 1
        if self._held[session] <= 0:
            del self._held[session]

    def _next(self) -> None:
        """A worker is free: give it to the first session in turn, which then goes to the back."""
        while self._turns:
            session, turns = next(iter(self._turns.items()))
            turn = turns.popleft()
            if turns:
                self._turns.move_to_end(session)
            else:
                del self._turns[session]
            if not turn.done():
                turn.set_result(None)
                return
        self._free += 1
