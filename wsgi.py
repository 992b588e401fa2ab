"""WSGI entry point: gunicorn wsgi:app"""

from labeler import create_app

app = create_app()
