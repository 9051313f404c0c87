"""strongroomd: the long-running process (scheduler, control socket, metrics)."""
