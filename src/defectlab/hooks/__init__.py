"""Webhooks: an organization (or one of its projects) subscribes an address to events — a task
submitted, approved or rejected, an export or an import finished — and each event is POSTed
there as signed JSON by a job, through the guarded fetcher, with retries, and logged.

This app sits above data movement and labeling and listens to what they send
(``labeling.signals.task_event``, ``jobs.signals.job_finished``): they never import it."""
