"""vidconv.transcoder."""
