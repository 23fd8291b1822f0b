"""The bottom layer: the scenario clock, worker threads, data-file loading, statistics, the error root."""
