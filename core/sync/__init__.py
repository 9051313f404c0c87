"""Sync between sites: peers and their lag, and the queue of conflicts a person resolves.

The sync job itself (core/jobs/sync.py) moves changed rows between peers; what it
cannot merge by the peer's strategy it queues here (conflicts.queue_conflict), and a
person resolves it field by field (conflicts.resolve_conflict).
"""
