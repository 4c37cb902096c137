"""driftgate: safety."""
