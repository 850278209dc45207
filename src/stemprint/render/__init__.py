"""stemprint.render."""
