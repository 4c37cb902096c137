"""driftgate: adapters."""
