from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "defectlab.jobs"
    label = "jobs"

    def ready(self) -> None:
        # Each app keeps its background work in `<app>/jobs.py`; importing them registers the
        # handlers, in the web process (which starts jobs) and in the worker (which runs them).
        from django.utils.module_loading import autodiscover_modules

        autodiscover_modules("jobs")
