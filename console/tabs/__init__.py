"""The main screen's tabs, one module per tab, each a `Tab` (tabs/base.py): who is
logged in, which action needs which permission (and why it is off), the hint line, the
load, and the daemon event topics the tab listens to, from which the main screen builds
its one subscription. What a tab opens over itself is in console/modals."""
