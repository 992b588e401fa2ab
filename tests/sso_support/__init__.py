"""Test support for single sign-on: a throwaway CA, the local OpenID provider, pytest fixtures."""
