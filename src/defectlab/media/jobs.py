"""Background work of the media app (registered with the job runner on start-up): syncing a
source storage into its project, and writing submitted annotations to a target storage."""

from django.utils.translation import gettext_lazy as _

from defectlab.jobs.kinds import JobKind, register
from defectlab.media.sync import SYNC_KIND, WRITE_KIND, run_sync, run_write

register(JobKind(SYNC_KIND, _("Storage sync"), run_sync))
register(JobKind(WRITE_KIND, _("Write to storage"), run_write))
