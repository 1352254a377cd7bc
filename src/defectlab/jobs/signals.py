"""What the job runner tells the apps above it, without knowing them."""

from django.dispatch import Signal

# Sent when a job reaches a final state (succeeded, failed or cancelled by the runner), inside
# the transaction that writes that state, with ``job_id``, ``kind``, ``state``,
# ``organization_id`` and ``project_id``. Receivers write rows that must commit with it and do
# no slow work (webhooks create their deliveries here and send them after the commit).
job_finished = Signal()

# Sent in the worker process when a handler starts (``kind``) and after each attempt at a job
# (``kind``, ``outcome``: "succeeded", "failed", "cancelled" or "retried"; ``seconds``: the
# handler's time, None where no handler ran), outside any transaction. For counting (the
# process's metrics, defectlab.operations): receivers do no slow work.
job_started = Signal()
job_attempted = Signal()
