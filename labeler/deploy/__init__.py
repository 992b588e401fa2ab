"""Deployment helpers: `labeler deploy nginx` prints the reverse proxy's configuration."""
