"""Serving mechanics for the demo, without Gradio: what a request costs, and lanes that run the work on a few
threads while the requests waiting for them hold none, served in turn by session."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import heapq
import itertools
import os
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

from PIL import Image

from .hints import MAX_SOLVE_PIXELS, rgba_hints
from .images import read_image
from .pipeline import render_shape

__all__ = ["COSTS", "Busy", "Costs", "Header", "Lane", "architecture", "low_priority", "painted_share", "read_header",
           "read_hint_layers"]

Size = tuple[int, int]  # (width, height)


@dataclass(frozen=True)
class Costs:
    """Seconds of one thread per unit of a photo request's work; the defaults (:data:`COSTS`) are measured by
    ``python bench/benchmark.py cost`` (bench/RESULTS.md). MP: megapixels of the photo, unless named otherwise."""

    decode: float  # per MP decoded (the photo, each hint layer; PNG, the slower of PNG and JPEG)
    prepare: float  # per MP: L and the gray version
    network: Mapping[str, float]  # per megapixel the network sees (render_shape), by architecture()
    compose: float  # per MP: ab upsampled, Lab to RGB
    score: float  # per MP: a colour upload's gray baseline and both scores (PSNR, SSIM, colourfulness)
    encode: float  # per MP: the colorized PNG and the gray one (compress level 1)
    encode_gray: float  # per MP: the gray PNG alone
    hint_layer: float  # per MP per hint layer: scaled to the photo, composited, its painted share counted
    propagate: float  # per megapixel solved: the network's, up to hints.MAX_SOLVE_PIXELS

    def network_seconds(self, architecture: str, megapixels: float) -> float:
        """Seconds of one pass of a network of ``architecture`` on ``megapixels``; an unknown one costs as the
        slowest known."""
        return megapixels * self.network.get(architecture, max(self.network.values()))

    def colorize(self, size: Size, render_size: int, architecture: str, hint_sizes: Sequence[Size] = (),
                 scored: bool = True) -> float:
        """Seconds to colorize a photo of ``size`` at ``render_size`` with hint layers of ``hint_sizes``, scored
        (a colour upload) or not, and to write its PNGs."""
        megapixels, render = _megapixels(size), _render_megapixels(size, render_size)
        seconds = (megapixels * (self.decode + self.prepare + self.compose + self.encode)
                   + self.network_seconds(architecture, render) + (megapixels * self.score if scored else 0.0))
        if hint_sizes:
            seconds += (sum(_megapixels(layer) for layer in hint_sizes) * self.decode
                        + len(hint_sizes) * megapixels * self.hint_layer
                        + min(render, MAX_SOLVE_PIXELS / 1e6) * self.propagate)
        return seconds

    def gray(self, size: Size) -> float:
        """Seconds to show a photo's gray version: decode, prepare, one PNG."""
        return _megapixels(size) * (self.decode + self.prepare + self.encode_gray)

    def suggest(self, size: Size, render_size: int, architecture: str) -> float:
        """Seconds to suggest colours at a point of a photo: decode, prepare, one pass of the network."""
        return (_megapixels(size) * (self.decode + self.prepare)
                + self.network_seconds(architecture, _render_megapixels(size, render_size)))


def architecture(info: dict) -> str:
    """A weights file's architecture as :attr:`Costs.network` names it, from its metadata: "effnet-unet
    regression", "effnet-unet classification", "unet regression"..."""
    model = info.get("model", {})
    return f"{model.get('name')} {model.get('args', {}).get('output', 'regression')}"


def _megapixels(size: Size) -> float:
    return size[0] * size[1] / 1e6


def _render_megapixels(size: Size, render_size: int) -> float:
    h, w = render_shape(size[1], size[0], render_size)
    return h * w / 1e6


# Measured on the 2-vCPU AMD EPYC VM at load average 4.2 (bench/RESULTS.md); what matters is their ratios to each
# other and to the big lane's threshold, which were measured on the same machine.
COSTS = Costs(decode=0.0514, prepare=0.0062, network={"effnet-unet regression": 1.95, "unet regression": 4.64,
                                                       "effnet-unet classification": 10.8},
              compose=0.0339, score=0.105, encode=0.145, encode_gray=0.0613, hint_layer=0.0044, propagate=11.5)


@dataclass(frozen=True)
class Header:
    """What an image file's header says, read without decoding it."""

    size: Size
    gray: bool  # stored with one channel (and maybe alpha): there is no colour to score


def read_header(path: str) -> Optional[Header]:
    """The header of an image file; None for what Pillow cannot open (decoding it later gives the message)."""
    try:
        with Image.open(path) as image:
            return Header(image.size, image.mode in ("1", "L", "LA", "I", "I;16", "F"))
    except Exception:  # noqa: BLE001 - not an image, a bomb...
        return None


def read_hint_layers(files: Sequence[str], size: Size, max_megapixels: float) -> Optional[Image.Image]:
    """Painted hint layers (RGBA files) composited into one RGBA image of the photo's ``size`` (a canvas of another
    size is scaled to it); None for no layers. ImageError or ValueError (no transparency) name the file."""
    hints = None
    for file in files:
        layer = rgba_hints(read_image(file, max_megapixels))
        if layer.size != size:
            layer = layer.resize(size, Image.Resampling.NEAREST)
        hints = layer if hints is None else Image.alpha_composite(hints, layer)
    return hints


def painted_share(hints: Image.Image) -> float:
    """The share of a hint image's pixels that are painted (alpha over one half)."""
    alpha = hints.getchannel("A")
    return sum(alpha.point(lambda a: 255 if a > 127 else 0).histogram()[255:]) / (hints.width * hints.height)


class Busy(ValueError):
    """A request refused because its lane, or its session's share of the lane, is full; the message says which."""


def low_priority() -> None:
    """Lower the calling thread's CPU priority (nice 10), so that its work yields to everyone else's."""
    if sys.platform.startswith("linux"):  # Linux sets the priority of one thread; elsewhere it would be the process's
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


class Lane:
    """Runs blocking calls on ``workers`` threads; a request waiting for one is a coroutine, holding no thread.

    A free worker goes to the waiting request whose session has been served least, counting each request by its
    ``cost`` (start-time fair queueing): a session sending costly or many requests gets its share of the lane's
    time, not the whole lane, even one that sends them one at a time. ``capacity`` bounds the requests the lane
    holds (running and waiting; None: bounded by whoever admits them) and ``per_session`` how many of them one
    session may hold; a request beyond either is refused at once with :class:`Busy`. Use it from one event loop.
    """

    def __init__(self, name: str, workers: int, capacity: Optional[int] = None, per_session: Optional[int] = None,
                 what: str = "requests", initializer: Optional[Callable[[], None]] = None):
        if workers < 1 or (capacity is not None and capacity < workers) or (per_session is not None and per_session < 1):
            raise ValueError(f"lane {name}: need workers >= 1, capacity >= workers and per_session >= 1, got "
                             f"{workers}, {capacity}, {per_session}")
        self.name, self.workers, self.capacity, self.per_session, self.what = name, workers, capacity, per_session, what
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=name, initializer=initializer)
        self._free = workers
        self._waiting: list[tuple[float, int, asyncio.Future]] = []  # a heap of (start tag, arrival, turn)
        self._arrivals = itertools.count()
        self._clock = 0.0  # the start tag of the request served last
        self._finish: dict[str, float] = {}  # by session: the tag where its requests so far end
        self._held: Counter[str] = Counter()  # requests running or waiting, by session

    @property
    def held(self) -> int:
        """Requests in the lane now, running or waiting."""
        return sum(self._held.values())

    async def run(self, session: str, cost: float, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on one of the lane's threads in ``session``'s turn, with the caller's context variables;
        ``cost`` (e.g. estimated seconds) counts against the session's share. Raises :class:`Busy` at once when the
        lane or the session's share of it is full."""
        if self.per_session is not None and self._held[session] >= self.per_session:
            raise Busy(f"You already have {self._held[session]} {self.what} in progress; wait for one to finish.")
        if self.capacity is not None and self.held >= self.capacity:
            raise Busy(f"The server is busy with {self.what} ({self.held} in progress); try again in a minute.")
        self._held[session] += 1
        start, cost = max(self._clock, self._finish.get(session, 0.0)), max(cost, 0.0)
        self._finish[session] = start + cost
        try:
            await self._turn(start)
        except BaseException:  # it never ran: its cost is given back
            self._finish[session] -= cost
            self._let_go(session)
            raise
        self._clock = max(self._clock, start)
        loop = asyncio.get_running_loop()
        # The worker is given back when the work ends, not when its caller stops waiting (a closed connection).
        work = self._pool.submit(contextvars.copy_context().run, functools.partial(fn, *args))
        work.add_done_callback(lambda _: self._finish_soon(loop, session))
        return await asyncio.wrap_future(work)

    async def _turn(self, start: float) -> None:
        if self._free:  # then nobody is waiting
            self._free -= 1
            return
        turn = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (start, next(self._arrivals), turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():  # given a worker as it was cancelled: pass the worker on
                self._next()
            raise  # a cancelled turn stays in the heap until its tag comes up, and is skipped then

    def _finish_soon(self, loop: asyncio.AbstractEventLoop, session: str) -> None:
        try:
            loop.call_soon_threadsafe(self._done, session)
        except RuntimeError:  # the loop has closed (the server stopped): nobody is waiting any more
            pass

    def _done(self, session: str) -> None:
        self._let_go(session)
        self._next()

    def _let_go(self, session: str) -> None:
        self._held[session] -= 1
        if self._held[session] <= 0:
            del self._held[session]
        if len(self._finish) > 256:  # forget sessions whose share is settled: none of theirs is in the lane
            self._finish = {s: tag for s, tag in self._finish.items() if tag > self._clock or s in self._held}

    def _next(self) -> None:
        """A worker is free: give it to the waiting request with the smallest start tag."""
        while self._waiting:
            start, _, turn = heapq.heappop(self._waiting)
            if not turn.done():
                turn.set_result(None)
                return
        self._free += 1
