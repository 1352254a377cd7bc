"""The hooks app's job kind: sending one webhook delivery (found by jobs.apps on start-up)."""

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from defectlab.hooks.delivery import KIND, run_delivery
from defectlab.jobs.kinds import JobKind, register


def retry_delay(attempts: int) -> float:
    """Seconds before the next attempt: DEFECTLAB_WEBHOOK_RETRY_SECONDS, doubled after each
    failed attempt (10, 20, 40, 80 s by default)."""
    return float(settings.WEBHOOK_RETRY_SECONDS) * 2 ** max(attempts - 1, 0)


register(JobKind(KIND, _("Webhook delivery"), run_delivery, retry_delay=retry_delay))
