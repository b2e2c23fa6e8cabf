"""botocore event handlers that keep a client's requests inside the current deadline (private).

Two handlers, registered on the client's own event emitter (boto3 copies it per client):

* ``before-send`` (after every other ``before-send`` handler, so after adaptive mode's
  rate-limiter wait): when the current deadline (`data_aggregator._deadline.current`)
  has passed, the attempt is not sent and the call raises
  [`DeadlineExceededError`][data_aggregator.exceptions.DeadlineExceededError]; otherwise
  the attempt's read timeout is cut to the time left (below). It runs on every attempt,
  the retries included.
* ``needs-retry``: botocore's retry handler (standard, adaptive or legacy mode; one per
  service, registered under the unique id ``retry-config-<service>``) is wrapped. When it
  asks for a retry whose backoff sleep would not end before the deadline, the call raises
  ``DeadlineExceededError`` (its cause the last error) instead of sleeping.

botocore offers no public way to read a registered handler back, so the wrapper finds the
retry handler in the emitter's table of unique ids. If a future botocore moves it, the
wrapper is not installed (a debug log says so) and the ``before-send`` check still stops
every attempt after the deadline; only a backoff sleep could then outlive it.

The ``before-send`` handler also cuts the attempt's read timeout to the time left (never
below `MIN_READ_TIMEOUT_SECONDS`): botocore (1.43.72 and later) reads a ``read_timeout``
from the request's context and passes it to urllib3 for that attempt alone, so each wait
for data of the attempt (its answer, a chunk of a streamed body) lasts at most the time
that was left when it was sent, whatever the client's ``read_timeout``. An older botocore
ignores the key. The connect timeout stays the client's, and it also bounds each send of
a request's body. Keep it short for clients used under a deadline.

With no deadline current (outside an invocation), both handlers do nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from data_aggregator import _deadline
from data_aggregator.exceptions import DeadlineExceededError

__all__ = ["MIN_READ_TIMEOUT_SECONDS", "add_deadline_hooks"]

logger = logging.getLogger(__name__)

_BEFORE_SEND_ID = "data-aggregator-deadline-before-send"

#: The shortest read timeout the deadline gives an attempt: one sent with less time left
#: than this may wait this long for its answer (a zero timeout would fail at once even an
#: answer already on its way).
MIN_READ_TIMEOUT_SECONDS = 0.05


def add_deadline_hooks(client: Any) -> None:
    """Make ``client`` (any boto3 client) respect the invocation's deadline.

    Once added, a request is not sent, and a retry not slept for, past the deadline that
    is current in the calling thread (``data_aggregator``'s processor sets it for each
    invocation and carries it into its worker threads): the call raises
    [`DeadlineExceededError`][data_aggregator.exceptions.DeadlineExceededError] instead.
    Outside an invocation the client behaves as before. Adding the hooks twice is
    harmless. Every client the library builds or is given gets them.
    """
    events = client.meta.events
    service = client.meta.service_model.service_id.hyphenize()
    events.register_last("before-send", _refuse_after_deadline, unique_id=_BEFORE_SEND_ID)
    _bound_retries(events, service)


def _refuse_after_deadline(event_name: str = "", request: Any = None, **_: Any) -> None:
    deadline = _deadline.current()
    if deadline is None:
        return
    left = deadline.check(event_name.rpartition(".")[2] or event_name)
    _cut_read_timeout(request, left)


def _cut_read_timeout(request: Any, left: float) -> None:
    """Make this attempt's read timeout at most ``left`` seconds (the client's own
    ``read_timeout`` when that is shorter), through the request context's
    ``read_timeout``, which botocore applies to this attempt alone."""
    context = getattr(request, "context", None)
    if not isinstance(context, dict) or "client_config" not in context:
        return  # not botocore's request context: leave it
    configured = getattr(context["client_config"], "read_timeout", None)
    cut = max(left, MIN_READ_TIMEOUT_SECONDS)
    if configured is None:  # a client without a read timeout: the deadline is the only one
        context["read_timeout"] = cut
    elif isinstance(configured, int | float) and not isinstance(configured, bool):
        context["read_timeout"] = min(float(configured), cut)


def _bound_retries(events: Any, service: str) -> None:
    unique_id = f"retry-config-{service}"
    event = f"needs-retry.{service}"
    handler = _registered(events, unique_id)
    if handler is None:
        logger.debug(
            "no botocore retry handler found: retries are not bounded by the deadline",
            extra={"service": service},
        )
        return
    if isinstance(handler, _DeadlineBoundRetry):
        return
    events.unregister(event, unique_id=unique_id)
    events.register(event, _DeadlineBoundRetry(handler), unique_id=unique_id)


def _registered(events: Any, unique_id: str) -> Any:
    """The handler registered under ``unique_id``, or ``None`` (private botocore state)."""
    emitter = getattr(events, "_emitter", events)  # an EventAliaser wraps the emitter
    table = getattr(emitter, "_unique_id_handlers", None)
    if not isinstance(table, dict):
        return None
    entry = table.get(unique_id)
    return entry.get("handler") if isinstance(entry, dict) else None


class _DeadlineBoundRetry:
    """botocore's retry handler, refusing a retry whose sleep would outlast the deadline."""

    def __init__(self, handler: Any) -> None:
        self._handler = handler

    def __call__(self, **kwargs: Any) -> Any:
        delay = self._handler(**kwargs)
        if delay is None or delay is False:
            return delay
        deadline = _deadline.current()
        if deadline is None:
            return delay
        left = deadline.remaining()
        if left > float(delay):
            return delay
        operation = getattr(kwargs.get("operation"), "name", None) or "request"
        caught = kwargs.get("caught_exception")
        raise DeadlineExceededError(
            "no time left before the invocation's deadline to retry the request",
            context={
                "operation": operation,
                "attempts": kwargs.get("attempts"),
                "retry_delay_seconds": round(float(delay), 3),
                "remaining_seconds": round(left, 3),
                "last_error": _last_error(kwargs.get("response"), caught),
            },
        ) from caught if isinstance(caught, BaseException) else None


def _last_error(response: Any, caught: Any) -> str | None:
    """The error code of the answer being retried, or the exception's type name."""
    if caught is not None:
        return type(caught).__name__
    try:
        _, parsed = response
        code = parsed.get("Error", {}).get("Code")
    except (TypeError, ValueError, AttributeError):
        return None
    return str(code) if code else None
