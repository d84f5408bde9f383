"""The HTTP API (Litestar): thin routes over the session service and the verifier."""
