"""Directory sources. Each yields raw records; normalization and diffing are shared."""
