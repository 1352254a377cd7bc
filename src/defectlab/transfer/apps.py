from django.apps import AppConfig


class TransferConfig(AppConfig):
    name = "defectlab.transfer"
    label = "transfer"

    def ready(self) -> None:
        from defectlab.labeling.signals import annotation_submitted
        from defectlab.transfer.sync import write_to_targets

        # In every process that saves annotations (web, worker, CLI): a submit queues writes to
        # the project's target storages.
        annotation_submitted.connect(write_to_targets, dispatch_uid="transfer.write_to_targets")
