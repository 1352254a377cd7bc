from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LabelingConfig(AppConfig):
    """Named for the operator's admin, which lists models under their app's name."""

    name = "defectlab.labeling"
    label = "labeling"
    verbose_name = _("Labeling")
