"""Serves a WSGI app with waitress on a thread of its own; ``stop()`` shuts it down cleanly."""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from waitress import wasyncore
from waitress.server import create_server

log = logging.getLogger(__name__)

LOOP_TIMEOUT = 0.5  # seconds the server loop may sleep before it notices stop()


class WebServer:
    """``WebServer(app, host, port)``: port 0 picks a free one (read ``port`` after)."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *,
                 threads: int = 12, **waitress_options: Any) -> None:
        self.app = app
        # channel_request_lookahead lets waitress see a client hang up while its request is
        # still running, which is how an SSE stream learns that its reader left.
        options: dict[str, Any] = {"threads": threads, "channel_request_lookahead": 1,
                                   "ident": "appliance", "asyncore_loop_timeout": LOOP_TIMEOUT}
        options.update(waitress_options)
        self._server = create_server(app, host=host, port=port, **options)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="web", daemon=True)

    @property
    def host(self) -> str:
        return str(self._server.effective_host)

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    @property
    def url(self) -> str:
        host = self.host
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}"

    def start(self) -> None:
        self._thread.start()
        log.info("web page on %s", self.url)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, end live streams and connections, wait for request threads."""
        self._stopping.set()
        close_app = getattr(self.app, "close", None)
        if callable(close_app):
            close_app()
        if self._thread.is_alive():
            with contextlib.suppress(OSError):  # the loop may have closed it already
                self._server.pull_trigger()  # wakes the loop at once
            self._thread.join(timeout)
        else:
            self._close(timeout)

    def _serve(self) -> None:
        server = self._server
        try:
            while not self._stopping.is_set():
                wasyncore.loop(timeout=LOOP_TIMEOUT, map=server._map,
                               use_poll=server.adj.asyncore_use_poll, count=1)
        except Exception:
            log.exception("web server loop failed")
        finally:
            self._close(5.0)

    def _close(self, timeout: float) -> None:
        # On the loop's own thread (or after it): waitress's socket map is not thread-safe.
        wasyncore.close_all(self._server._map)
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=timeout)
