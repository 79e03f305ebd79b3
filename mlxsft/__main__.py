"""``python -m mlxsft`` runs the CLI (used when the CLI re-executes itself with OpenBLAS)."""

from mlxsft.cli.main import main

if __name__ == "__main__":
    main()
