"""The registry's job kind: a new model version's check in the sandbox (found by jobs.apps on
start-up)."""

from django.utils.translation import gettext_lazy as _

from defectlab.inference.registry import CHECK_KIND, run_version_check
from defectlab.jobs.kinds import JobKind, register

register(JobKind(CHECK_KIND, _("Model check"), run_version_check))
