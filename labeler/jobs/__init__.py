"""Background jobs on Celery (labeler/jobs/queue.py sends them, labeler/jobs/worker.py runs them).

With ``LABELER_CELERY_BROKER_URL`` set (a Redis URL), training runs are sent to a Celery queue and any
worker started with ``celery -A labeler.jobs.worker worker -Q labeler`` (on this machine or another
one with the same database and store) runs them. Unset, as for ``make run``, each run gets a local
worker process of its own (labeler/training/worker.py). Both call the same task body,
``labeler.training.worker.execute_run``; progress, heartbeat and results live in the database.
"""
