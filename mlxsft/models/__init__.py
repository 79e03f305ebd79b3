"""mlxsft/models."""
