"""Rate limits that hold across replicas: a counter protocol, in memory and on Redis."""
