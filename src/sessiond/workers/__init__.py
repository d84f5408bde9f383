"""Background workers that run beside the session authority (``python -m sessiond.workers.<name>``).

- :mod:`sessiond.workers.relay`: publishes revocations left in the durable outbox to the stream
  (I4), and writes the denylist snapshots.
"""
