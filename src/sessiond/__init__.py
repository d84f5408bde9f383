"""sessiond: server-side sessions with stateless JWT verification and instant revocation."""

__version__ = "0.1.0"
