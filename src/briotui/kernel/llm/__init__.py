"""Model providers: the interface agents' completions go through, and its implementations."""
