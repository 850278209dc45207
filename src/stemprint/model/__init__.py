"""stemprint.model."""
