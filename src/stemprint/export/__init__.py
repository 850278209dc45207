"""stemprint.export."""
