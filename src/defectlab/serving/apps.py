"""The detection service: organization API keys, quotas, fair batching, metering, and the ASGI
app `defectlab serve-inference` runs (``serving.app``)."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ServingConfig(AppConfig):
    """Named for the operator's admin, which lists models under their app's name."""

    name = "defectlab.serving"
    label = "serving"
    verbose_name = _("Detection service")
