from django.apps import AppConfig


class OperationsConfig(AppConfig):
    name = "defectlab.operations"
    label = "operations"

    def ready(self) -> None:
        from defectlab.operations.metrics import connect

        # In every process (web, worker, CLI): each counts the events that happen in it.
        connect()
