"""Reusable console widgets, one per module; they post messages and never reach into siblings."""
