from django.apps import AppConfig


class HooksConfig(AppConfig):
    name = "defectlab.hooks"
    label = "hooks"

    def ready(self) -> None:
        from defectlab.hooks import events
        from defectlab.jobs.signals import job_finished
        from defectlab.labeling.signals import task_event

        # In every process that changes tasks or finishes jobs (web, worker, CLI): the
        # deliveries are written in the same transaction and sent once it commits.
        task_event.connect(events.on_task_event, dispatch_uid="hooks.on_task_event")
        job_finished.connect(events.on_job_finished, dispatch_uid="hooks.on_job_finished")
