"""Temporal activities: thin wrappers that call dirhook's pure code and its store."""
