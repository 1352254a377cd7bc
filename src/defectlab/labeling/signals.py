"""What labeling tells the apps above it, without knowing them."""

from django.dispatch import Signal

# Sent once a submit has committed, with ``task_id``, ``project_id``, ``version`` (the submitted
# annotation version) and ``user_id``. Receivers must not raise: the annotation is saved.
annotation_submitted = Signal()
