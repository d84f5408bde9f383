"""Local verification of access tokens: signature, claims and the denylist, no store lookup."""
