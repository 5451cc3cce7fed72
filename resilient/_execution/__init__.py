"""The execution layer: how layers compose into one chain, the base every
policy shares, one call counted as one request, and the counters in place."""
