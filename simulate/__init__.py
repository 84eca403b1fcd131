"""simulate package (placeholder until its issue lands)."""
