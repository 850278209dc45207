"""stemprint.dsp."""
