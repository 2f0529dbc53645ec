"""Helpers shared by the reliability suite and the HTTP benchmark: real `scim-help serve` subprocesses,
the platform fakes in their own process, throwaway Redis servers, and request signing."""
