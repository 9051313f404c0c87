"""Helpers of the console that are not widgets: who is logged in (identity), how a worker
talks to the daemon without racing its tab (workers), the messages of the event worker
(events) and how times and sizes read (text)."""
