"""Models: the detection engine (`inference.engine`, plain Python) and, around it, the model
registry and pre-annotation that run it on a project's images."""
