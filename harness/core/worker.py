"""One background thread with explicit states, for the rig's moving parts (rest-bus, STM32, UART reader).

A worker goes new → running → stopped, once: `start()` runs `_work()` in a daemon thread, `wait()` blocks until
it is done, `stop()` asks it to end (`_stop_requested`), joins it within a timeout and re-raises, as the
worker's own error type, whatever ended the thread. A stopped worker refuses to start again, and a worker that
was never started refuses to be waited for: use after close is an error, never a silent no-op.

`start_stepped()` runs a worker without its thread, on virtual time: the caller (`harness.run.scheduler`) drives
it by the subclass's own step method; `stop()` then only finishes it (`_finish`). States and errors are the same.
"""
from __future__ import annotations

import threading
from typing import TypeVar

from harness.core.errors import DtgHilError

W = TypeVar("W", bound="Worker")


class WorkerError(DtgHilError, RuntimeError):
    """A worker was used out of order, failed, or did not stop in time."""


class Worker:
    #: The exception type a subclass raises (a subclass of WorkerError).
    error_type: type[WorkerError] = WorkerError

    def __init__(self, thread_name: str) -> None:
        self._thread_name = thread_name
        self._state_lock = threading.Lock()
        self._state = "new"  # new -> running -> stopped
        self._stop_requested = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._stepped = False

    def _describe(self) -> str:
        return self._thread_name

    def _work(self) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        """Runs in the caller's thread after the worker thread has ended (e.g. flush a decoder)."""

    @property
    def running(self) -> bool:
        if self._stepped:
            return self._state == "running"
        return self._thread is not None and self._thread.is_alive()

    @property
    def stepped(self) -> bool:
        """True when the worker runs without a thread, driven by a scheduler (`start_stepped`)."""
        return self._stepped

    @property
    def error(self) -> BaseException | None:
        """The exception that ended the worker thread, if any."""
        return self._error

    def start(self: W) -> W:
        with self._state_lock:
            if self._state == "stopped":
                raise self.error_type(f"{self._describe()} was stopped; it cannot be restarted, create a new "
                                      f"{type(self).__name__}")
            if self._state == "running":
                raise self.error_type(f"{self._describe()} is already running")
            self._state = "running"
            self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
            self._thread.start()
        return self

    def start_stepped(self: W) -> W:
        """Start without a thread: the caller drives the worker on virtual time (`harness.run.scheduler`)."""
        with self._state_lock:
            if self._state != "new":
                raise self.error_type(f"{self._describe()} is {self._state}: only a new worker can start stepped")
            self._state = "running"
            self._stepped = True
        return self

    def _run(self) -> None:
        try:
            self._work()
        except BaseException as error:  # noqa: BLE001 - handed to the caller through stop()
            self._error = error
        finally:
            self._done.set()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the worker is done; False on timeout."""
        if self._state == "new":
            raise self.error_type(f"{self._describe()} was never started")
        return self._done.wait(timeout_s)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the worker to end and wait for it; raises if it failed or does not stop within `timeout_s`."""
        with self._state_lock:
            if self._state == "stopped":
                return
            started = self._state == "running"
            self._state = "stopped"
            self._stop_requested.set()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                raise self.error_type(f"{self._describe()} did not stop within {timeout_s} s")
        if started:
            self._finish()
            self._done.set()  # a stepped worker has no thread to set it
        if self._error is not None:
            raise self.error_type(f"{self._describe()} failed: {self._error!r}") from self._error

    def __enter__(self: W) -> W:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
