"""Receivers: where revocations go beyond sessiond's own verifiers (OIDC Back-Channel Logout,
Shared Signals / CAEP, signed webhooks), their registry, and the wire format of each kind."""
