"""Webhooks: leads register URLs per project for chosen events; signed JSON deliveries with retries.

- labeler/events.py writes each event and its deliveries in the transaction that made it happen (an
  outbox): a rolled-back transaction delivers nothing.
- delivery.py sends one attempt of a delivery (Standard Webhooks signature, SSRF checks, no redirects)
  and schedules the next with exponential back-off; dispatch.py runs it on Celery or a local thread.
"""
