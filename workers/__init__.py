"""Background workers that run beside the session authority (``python -m workers.<name>``).

- :mod:`workers.relay`: publishes revocations left in the durable outbox to the stream (I4).
"""
