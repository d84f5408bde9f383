"""The deliveries' own durable copy of the revocation stream, ``<stream>_DELIVERIES``.

The revocation stream keeps an event only as long as a token it revokes can live (minutes by
default): enough for every follower, not for a receiver, or the delivery worker itself, that is
down for an hour. So the worker delivers from a stream of its own that **sources** the
revocation stream: the NATS server copies each event into it as it arrives, whether a worker
runs or not, and keeps it ``SESSIOND_DELIVERY_RETENTION`` seconds (3 days by default). A copied
message keeps its subject and headers, its ``Sessiond-Signature`` among them (the server adds
``Nats-Stream-Source``), so the worker checks every event's signature as before.
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.js import api

from sessiond.broadcast.stream import StreamSpec
from sessiond.settings import Settings

__all__ = ("DeliveryStream", "delivery_stream_name")


def delivery_stream_name(origin: StreamSpec) -> str:
    """``<stream>_DELIVERIES``: the deliveries' copy of the revocation stream of ``origin``."""
    return f"{origin.name}_DELIVERIES"


@dataclass(frozen=True)
class DeliveryStream:
    """The copy of ``origin`` the receivers' consumers read, kept ``max_age`` seconds."""

    origin: StreamSpec
    max_age: float

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryStream:
        return cls(StreamSpec.from_settings(settings), float(settings.delivery_retention))

    @property
    def name(self) -> str:
        return delivery_stream_name(self.origin)

    def config(self) -> api.StreamConfig:
        """No subjects of its own: only what the server copies from ``origin``, deduplicated
        by event id like there. Nothing may stall the copy (the events would be lost once
        ``origin`` drops them): full (as large as ``origin`` may grow, 1 GiB by default:
        millions of events), it drops its oldest events; and it takes any message ``origin``
        took, whose size ``origin`` limits, with the ``Nats-Stream-Source`` header the server
        adds."""
        return api.StreamConfig(
            name=self.name,
            description=(
                f"sessiond deliveries' copy of {self.origin.name} (managed by sessiond-delivery)"
            ),
            sources=[api.StreamSource(name=self.origin.name)],
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            num_replicas=self.origin.num_replicas,
            max_age=self.max_age,
            duplicate_window=self.origin.duplicate_window,
            discard=api.DiscardPolicy.OLD,
            max_bytes=self.origin.max_bytes,
            max_msgs=-1,
            max_msg_size=-1,
            deny_delete=True,
            deny_purge=True,
        )
