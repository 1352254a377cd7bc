"""Data movement: everything that brings images and labels into a project or takes them out —
URL import, dataset import, export, and syncing with S3 storage connections (sources in,
targets out). It sits above ``labeling`` and uses its services; ``labeling`` never calls it
(a submit sends ``labeling.signals.annotation_submitted``, which this app listens to)."""
