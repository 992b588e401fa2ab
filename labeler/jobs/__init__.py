"""Background jobs on Celery (labeler/jobs/queue.py sends them, labeler/jobs/worker.py runs them).

With ``LABELER_CELERY_BROKER_URL`` set (a Redis URL), training runs, the import prescreen, large
uploads (import jobs) and deep-zoom tiles are sent to a Celery queue and any worker started with
``celery -A labeler.jobs.worker worker -Q labeler`` (on this machine or another one with the same
database and store) runs them. Unset, as for ``make run``, each job gets a local worker process of its
own (training: labeler/training/worker.py; imports and tiles: ``python -m labeler.jobs.local``,
started by labeler/jobs/spawn.py). Both run the same task bodies (``execute_run``,
``execute_import_job``, ``build_pyramids_job``); progress, heartbeat and results live in the database.
"""
