"""WSGI entry point: gunicorn wsgi:app"""

import os

# Before NumPy loads: the agreement figures and their bootstrap intervals are many small matrix
# products, on which OpenBLAS's worker threads thrash against the other web workers (measured
# 8x slower than one thread on a busy 2-core host). A deployment may still override it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from labeler import create_app
from labeler.labeling import icd10

app = create_app()
# The ICD-10-CM index (about 2.5 s of CPU) is built while the worker boots, before it takes requests,
# not by the first save that names a diagnosis: that rater waited seconds after every worker start,
# and gunicorn replaces each worker after about 20000 requests (labeler serve, README). While a worker
# boots, the others serve.
icd10.index()
