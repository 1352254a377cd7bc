"""Background work of the ingest app (registered with the job runner on start-up)."""

from django.utils.translation import gettext_lazy as _

from defectlab.ingest.urlimport import KIND as URL_IMPORT
from defectlab.ingest.urlimport import run_url_import
from defectlab.jobs.kinds import JobKind, register

register(JobKind(URL_IMPORT, _("Import from URLs"), run_url_import, items=True))
