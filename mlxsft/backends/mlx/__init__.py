"""mlxsft/backends/mlx."""
