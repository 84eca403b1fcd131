"""validate package (placeholder until its issue lands)."""
