"""WSGI entry point: gunicorn wsgi:app"""

import os

# Before NumPy loads: the agreement figures and their bootstrap intervals are many small matrix
# products, on which OpenBLAS's worker threads thrash against the other web workers (measured
# 8x slower than one thread on a busy 2-core host). A deployment may still override it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from labeler import create_app

app = create_app()
