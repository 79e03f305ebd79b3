"""mlxsft/backends/torch."""
