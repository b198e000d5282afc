"""A process forked while the driver is still lean, to run one later step of the run on its own.

The largest process of a small run was its driver at the end: it held what the search needed
(scikit-learn, Optuna, the boosting libraries, featuretools once a trial synthesised features) and then
loaded the export stack for the final stage on top (benchmarks/RESULTS.md, session 37). A child forked
before any of that imports only what the later step needs, while the search runs on the other core, and
is handed that step's inputs pickled when the search is over. Each process then holds one stage's
libraries, not the union of all of them.

Standard library only: the fork happens before the engine imports anything heavy.
"""
from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import socket
import traceback
from collections.abc import Callable
from typing import Any

log = logging.getLogger("automl")


class HandoffError(RuntimeError):
    """The child died or answered nothing: the step did not run there."""


class NotHandedOver(Exception):
    """The step's inputs do not pickle: the caller runs it itself."""


def _send_bytes(sock: socket.socket, data: bytes) -> None:
    sock.sendall(len(data).to_bytes(8, "little") + data)  # length-prefixed: _recv reads exactly one message


def _send(sock: socket.socket, obj: Any) -> None:
    _send_bytes(sock, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def _recv(sock: socket.socket) -> Any:
    head = _read(sock, 8)
    return pickle.loads(_read(sock, int.from_bytes(head, "little")))


def _read(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError("the other process closed the connection")
        buf += chunk
    return bytes(buf)


def _picklable_error(e: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:
        return RuntimeError(f"{type(e).__name__}: {e}")


class LeanFork:
    """A child that runs `prepare()` at once (imports), then waits for one (function, arguments) message,
    runs it and sends back its result or its exception. `pack` and `call` are the driver's side; `close`
    ends a child that was not needed."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.sock = sock
        self.used = False

    @classmethod
    def start(cls, prepare: Callable[[], None]) -> LeanFork:
        parent, child = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # the child never returns from here
            parent.close()
            _serve(child, prepare)
        child.close()
        return cls(pid, parent)

    def alive(self) -> bool:
        """Whether the child is still there to be handed a step (not ended, killed or used)."""
        if self.used:
            return False
        try:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid:
            self.used = True
            self.sock.close()
        return not pid

    def pack(self, fn: Callable[..., Any], *args: Any) -> bytes:
        """`fn(*args)` pickled for `call` (fn by reference: a module-level function). NotHandedOver, and the
        child ended, if something in it does not pickle: the caller then runs the step itself."""
        try:
            return pickle.dumps((fn, args), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:
            self.close()
            raise NotHandedOver(f"{type(e).__name__}: {e}") from None

    def call(self, packed: bytes) -> Any:
        """Run the packed step in the child: its result, or its exception raised here. HandoffError if the
        child is gone."""
        self.used = True
        try:
            _send_bytes(self.sock, packed)
            status, value, tb = _recv(self.sock)
        except (EOFError, OSError) as e:
            code = self._reap()
            raise HandoffError(f"the final stage's process ended without an answer ({code}): {e}") from None
        except BaseException:  # Ctrl-C or SIGTERM of the driver: the child goes too
            self.kill()
            raise
        self._reap()
        if status == "ok":
            return value
        log.debug("in the final stage's process:\n%s", tb)
        raise value

    def close(self) -> None:
        """End a child that was not used (data too large to hand over, a run that failed before): at once,
        it has written nothing."""
        if not self.used:
            self.used = True
            self.kill(signal.SIGKILL)

    def kill(self, sig: int = signal.SIGTERM) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)
        self._reap()

    def _reap(self) -> str:
        self.sock.close()
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            return "already reaped"
        if os.WIFSIGNALED(status):
            return f"signal {os.WTERMSIG(status)}"
        return f"exit {os.WEXITSTATUS(status)}"


def _serve(sock: socket.socket, prepare: Callable[[], None]) -> None:
    code = 0
    try:
        try:
            prepare()
        except Exception:  # the step imports what it misses itself; the driver's run goes on
            log.debug("lean fork: preparing failed:\n%s", traceback.format_exc())
        msg = _recv(sock)
        if msg is not None:
            fn, args = msg
            try:
                reply = ("ok", fn(*args), "")
            except BaseException as e:  # a result of the step, raised again in the driver
                reply = ("error", _picklable_error(e), traceback.format_exc())
            try:
                _send(sock, reply)
            except (pickle.PicklingError, TypeError, AttributeError) as e:
                _send(sock, ("error", RuntimeError(f"the step's result could not be sent back: {e}"), ""))
    except BaseException:  # the driver went away, or Ctrl-C while waiting
        code = 1
    finally:
        logging.shutdown()
        os._exit(code)
