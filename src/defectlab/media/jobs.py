"""Background work of the media app (registered with the job runner on start-up): syncing a
source storage into its project, and writing submitted annotations to a target storage."""

from defectlab.jobs.runner import handler
from defectlab.media.sync import SYNC_KIND, WRITE_KIND, run_sync, run_write

handler(SYNC_KIND)(run_sync)
handler(WRITE_KIND)(run_write)
