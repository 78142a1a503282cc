"""Server-side copy of an S3 prefix into another: incremental, resumable, faithful.

The data layer copies the legacy bucket into the lake with it; it knows nothing of
phases or stacks, only two boto3 S3 clients, two locations and a directory for its journal::

    source = s3_client(session, workers=32)
    result = copy_prefix(source, source, Location("legacy", "exports/"),
                         Location("lake-raw", "legacy/"), Path(".phasegate/copy/<stack>"),
                         CopyOptions(kms_key_id=key_arn), progress=show, stop=stop_event)

* **Server side**: CopyObject, or CreateMultipartUpload + UploadPartCopy above
  ``multipart_threshold``; no byte of the data passes through this process (``transfer``).
* **Incremental**: the journal keeps, per copied object, its source size and ETag and the
  target ETag; a re-run lists both sides (LIST calls only, no request per object) and
  copies what is new or changed (``plan``).
* **Resumable**: the journal is appended and fsync'd in batches while copying; a killed
  run's next run copies the rest, and first aborts the multipart uploads it left open
  under the target prefix, so no partial object is ever visible (``journal``).
* **Faithful**: content type, metadata, tags and content headers as the source has them,
  encrypted with the given KMS key, with a SHA-256 checksum; keys are passed as they are
  (CopySource as a dict), whatever characters they hold.
* **Selective**: include and exclude globs on the key relative to the prefix (``globs``).
"""

from phasegate.datacopy.clients import client_config, s3_client
from phasegate.datacopy.globs import KeyFilter
from phasegate.datacopy.journal import journal_path
from phasegate.datacopy.model import (
    CopyOptions,
    CopyResult,
    DataCopyError,
    Failure,
    Location,
    Progress,
)
from phasegate.datacopy.plan import Plan
from phasegate.datacopy.runner import ProgressCallback, copy_prefix, pending
from phasegate.datacopy.transfer import Copied

__all__ = [
    "Copied",
    "CopyOptions",
    "CopyResult",
    "DataCopyError",
    "Failure",
    "KeyFilter",
    "Location",
    "Plan",
    "Progress",
    "ProgressCallback",
    "client_config",
    "copy_prefix",
    "journal_path",
    "pending",
    "s3_client",
]
