"""DefectLab: label defect images, review them, export datasets and serve detectors."""

__version__ = "0.1.0"
