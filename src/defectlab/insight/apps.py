from django.apps import AppConfig


class InsightConfig(AppConfig):
    name = "defectlab.insight"
    label = "insight"

    def ready(self) -> None:
        from defectlab.insight import runs
        from defectlab.jobs.signals import job_finished

        # An evaluation whose job failed or was cancelled says so (its job's error with it).
        job_finished.connect(runs.on_job_finished, dispatch_uid="insight.evaluation_finished")
