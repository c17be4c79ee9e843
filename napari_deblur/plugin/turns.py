"""Main-thread work spread over event-loop turns, so that napari never stalls.

Adding a layer to napari costs its layer controls, its vispy visual and a redraw on the main
thread: 0.1-0.4 s for a 2048 x 2048 plane on a loaded 2-core machine. Doing all of a run's
layers in one slot stalls the event loop for their sum. :class:`Turns` is a queue of
generators, each ``yield`` ending one step; a zero-delay single-shot QTimer runs one step
per turn of the event loop, so that clicks, redraws and other timers get their turn in
between. The generators run in the order they were queued.
"""

from collections import deque

from qtpy.QtCore import QTimer


class Turns:
    """A queue of generators run one step per event-loop turn.

    ``parent`` owns the timer (a QObject: when it is deleted, no more turns run);
    ``on_failure(err)`` is told of a ValueError or TypeError a step raised (e.g. napari
    refusing a property), which ends that generator; the queue goes on with the next.
    When ``parent`` is destroyed (its viewer closed) with work queued, the queue is dropped
    and ``on_abandon()`` is called: it may reset plain Python state, but touch no Qt object.
    """

    def __init__(self, parent, on_failure, on_abandon=None):
        self.queue = deque()
        self.on_failure = on_failure
        self.on_abandon = on_abandon
        self.timer = QTimer(parent)
        self.timer.setSingleShot(True)
        self.timer.setInterval(0)
        self.timer.timeout.connect(self.step)
        parent.destroyed.connect(self.abandon)

    def abandon(self, *_) -> None:
        """Drop the queued work (its parent is gone) and say so to ``on_abandon``."""
        self.queue.clear()
        if self.on_abandon is not None:
            self.on_abandon()

    def __len__(self) -> int:
        return len(self.queue)

    def add(self, steps) -> None:
        """Queue the generator ``steps``; its first step runs in a later turn."""
        self.queue.append(steps)
        if not self.timer.isActive():
            self.timer.start()

    def step(self) -> None:
        """One step of the first generator (an exhausted one hands over to the next at once)."""
        try:
            while self.queue:
                try:
                    next(self.queue[0])
                except StopIteration:
                    self.queue.popleft()
                    continue
                except (ValueError, TypeError) as err:
                    self.queue.popleft()
                    self.on_failure(err)
                except BaseException:  # a bug: that generator is spent, the queue goes on
                    self.queue.popleft()
                    raise
                break
        finally:
            if self.queue and not self.timer.isActive():
                self.timer.start()

    def flush(self) -> None:
        """Run everything queued now, in this turn."""
        self.timer.stop()
        while self.queue:
            self.step()
        self.timer.stop()
