"""The detection engine: plain Python (no Django), used by pre-annotation and serving alike."""
