"""Background work of data movement (registered with the job runner on start-up)."""

from django.utils.translation import gettext_lazy as _

from defectlab.jobs.kinds import JobKind, register
from defectlab.transfer import datasetimport, exports, sync, taskimport, urlimport

register(JobKind(exports.KIND, _("Export"), exports.run_export, download=True))
register(JobKind(datasetimport.KIND, _("Dataset import"), datasetimport.run_dataset_import))
register(JobKind(urlimport.KIND, _("Import from URLs"), urlimport.run_url_import, items=True))
register(JobKind(sync.SYNC_KIND, _("Storage sync"), sync.run_sync))
register(JobKind(sync.WRITE_KIND, _("Write to storage"), sync.run_write))
register(JobKind(taskimport.KIND, _("Task import"), taskimport.run_task_import))
