"""The buses that carry revocation events (:mod:`sessiond.events`) to every replica's denylist."""
