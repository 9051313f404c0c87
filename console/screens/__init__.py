"""Full screens of the console, the ones that fill the terminal on their own: login and
the main screen (banner, the tabs, the footer; the one event worker).

Tabs live in console/tabs (one module per tab, all on console/tabs/base.py), dialogs
pushed over a screen in console/modals, the non-widget helpers they share (identity,
workers, events, text) in console/helpers, and reusable widgets in console/widgets.
"""
