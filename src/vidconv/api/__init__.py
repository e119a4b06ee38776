"""vidconv.api."""
