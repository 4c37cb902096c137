"""driftgate: controller."""
