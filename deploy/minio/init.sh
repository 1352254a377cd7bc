#!/bin/sh
# The one-shot init of deploy/compose.yaml's MinIO (the minio/mc image): the bucket, the
# least-privilege policy and the user DefectLab's storage connections log in as. Running it
# again changes nothing. docs/operations.md, "MinIO: the policy and encryption".
set -eu

mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing "local/$MINIO_APP_BUCKET"

# What defectlab.media does in a bucket, and nothing else: list it (sync, the connection
# test, HeadBucket for its region), read, write (in parts above DEFECTLAB_S3_MULTIPART_MB, and
# abort a failed multipart upload), delete (the connection test's probe, a replaced export).
sed "s/BUCKET/$MINIO_APP_BUCKET/g" /init/policy.json > /tmp/defectlab-policy.json
mc admin policy create local defectlab-app /tmp/defectlab-policy.json
mc admin user add local "$MINIO_APP_ACCESS_KEY" "$MINIO_APP_SECRET_KEY"
mc admin policy attach local defectlab-app --user "$MINIO_APP_ACCESS_KEY" 2>/dev/null \
  || echo "policy defectlab-app already attached to $MINIO_APP_ACCESS_KEY"
echo "bucket $MINIO_APP_BUCKET ready for $MINIO_APP_ACCESS_KEY"
