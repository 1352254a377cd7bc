"""What labeling tells the apps above it, without knowing them."""

from django.dispatch import Signal

# Sent once a submit has committed, with ``task_id``, ``project_id``, ``version`` (the submitted
# annotation version) and ``user_id``. Receivers must not raise: the annotation is saved.
annotation_submitted = Signal()

# Sent once any save of an annotation version through the workflow has committed, with
# ``submit`` (whether the save submitted the task). For counting (the metrics); must not raise.
annotation_saved = Signal()

# Sent inside the transaction that submits, approves or rejects a task, with ``event``
# ("task.submitted", "task.approved", "task.rejected"), ``task`` (its new status set, saved in the
# same transaction), ``user`` and, for a review, ``comment``. Receivers write rows that must
# commit with the change or not at all (webhook deliveries) and do no slow work.
task_event = Signal()

# Sent inside the transaction that adds tasks to a project (every way tasks are made ends in
# labeling.tasks), with ``project_id``, ``first`` and ``last`` (the lowest and highest new task
# ids). Receivers start follow-up work that must commit with the tasks (a pre-annotation job).
tasks_added = Signal()
