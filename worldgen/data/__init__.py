"""Recorded gameplay: sources, policies, storage, collection and training windows."""
