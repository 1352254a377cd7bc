from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "defectlab.inference"
    label = "inference"

    def ready(self) -> None:
        from defectlab.inference.preannotation import on_tasks_added
        from defectlab.labeling.signals import tasks_added

        tasks_added.connect(on_tasks_added, dispatch_uid="inference.on_tasks_added")
