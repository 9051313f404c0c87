"""Modal screens: dialogs pushed over the main or login screen that dismiss with a value
(confirmations, forms, pickers, a record's detail, help, enrolment, the practice's
details, the export forms, the role picker). They never subscribe to daemon events; the
tab that opened one reloads what it changed."""
