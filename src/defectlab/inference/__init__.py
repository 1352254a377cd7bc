"""Models: the detection engine, and (to come) the model registry and pre-annotation."""
