"""vidconv.operator."""
