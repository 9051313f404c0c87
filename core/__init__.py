"""Strongroom's domain and data layer: knows nothing of ZeroMQ or Textual."""
