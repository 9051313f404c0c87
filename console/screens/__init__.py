"""Screens of the console: login, the main tabbed screen, one module per tab, and modals."""
