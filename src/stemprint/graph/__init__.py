"""stemprint.graph."""
