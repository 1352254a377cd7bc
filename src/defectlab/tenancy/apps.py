from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TenancyConfig(AppConfig):
    """Named for the operator's admin, which lists models under their app's name."""

    name = "defectlab.tenancy"
    label = "tenancy"
    verbose_name = _("Accounts and organizations")
