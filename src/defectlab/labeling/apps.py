from typing import Any

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LabelingConfig(AppConfig):
    """Named for the operator's admin, which lists models under their app's name."""

    name = "defectlab.labeling"
    label = "labeling"
    verbose_name = _("Labeling")

    def ready(self) -> None:
        from django.conf import settings
        from django.db.models.signals import pre_delete

        from defectlab.labeling.services import unassign_user

        def unassign(sender: Any, instance: Any, **kwargs: Any) -> None:
            # A deleted person's tasks go to nobody through the path that keeps the tally.
            unassign_user(instance.pk)

        pre_delete.connect(
            unassign, sender=settings.AUTH_USER_MODEL, weak=False, dispatch_uid="labeling.unassign"
        )
