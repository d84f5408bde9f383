"""The audit trail of a subject, as the administrator console shows it.

sessiond writes its audit trail as log lines on ``sessiond.audit`` (and, best effort, on a NATS
subject); it keeps no trail of its own that could be read back. The console keeps one, small
and in memory: :class:`AuditTrail` is a logging handler on that logger that keeps the latest
:data:`PER_SUBJECT` events of the :data:`SUBJECTS` subjects acted on most recently. It is
this replica's view since it started, which answers "what just happened to this user"; the
log (or the audit subject) stays the record of authority.

A session revocation's audit line names the session but not always its subject: the trail
learns which subject a session belongs to from the lines that name both (its sign-in,
refreshes), for the :data:`SESSIONS` sessions seen last. Refreshes are not kept themselves:
the session list shows each session's last activity.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from typing import Any

AUDIT_LOGGER = "sessiond.audit"
SUBJECTS = 1000
PER_SUBJECT = 20
SESSIONS = 10_000
#: Actions only learnt from (which subject a session is of): a refresh every few minutes per
#: session would push everything else out of a subject's trail.
NOT_KEPT = frozenset({"session.refreshed"})


class AuditTrail(logging.Handler):
    """The latest audit events of the subjects acted on most recently."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self._events: OrderedDict[str, deque[dict[str, Any]]] = OrderedDict()
        self._subject_of: OrderedDict[str, str] = OrderedDict()  # session id -> subject

    def attach(self) -> None:
        logging.getLogger(AUDIT_LOGGER).addHandler(self)

    def detach(self) -> None:
        logging.getLogger(AUDIT_LOGGER).removeHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        """Keep ``record``'s audit event (``handle`` holds the handler's lock meanwhile)."""
        event = getattr(record, "audit", None)
        if isinstance(event, dict):
            self._keep(event)

    def of(self, subject: str) -> list[dict[str, Any]]:
        """The subject's events kept, newest first."""
        self.acquire()
        try:
            return list(reversed(self._events.get(subject, ())))
        finally:
            self.release()

    def _keep(self, event: dict[str, Any]) -> None:
        subject, sid = event.get("subject"), event.get("session_id")
        if isinstance(subject, str) and isinstance(sid, str):
            _remember(self._subject_of, sid, subject, SESSIONS)
        elif isinstance(sid, str):
            subject = self._subject_of.get(sid)
        if not isinstance(subject, str) or event.get("action") in NOT_KEPT:
            return
        events = self._events.get(subject) or deque(maxlen=PER_SUBJECT)
        events.append(event)
        _remember(self._events, subject, events, SUBJECTS)


def _remember(table: OrderedDict[str, Any], key: str, value: Any, most: int) -> None:
    """Set ``table[key]`` as its newest entry, forgetting the oldest beyond ``most``."""
    table[key] = value
    table.move_to_end(key)
    if len(table) > most:
        table.popitem(last=False)
