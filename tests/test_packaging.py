"""Packaging: every package folder is installed, and `cli/` installs as `mlxsft.cli`, never as `cli`."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    dirs = cfg["package-dir"]
    found = set()
    for init in list((ROOT / "mlxsft").rglob("__init__.py")) + list((ROOT / "cli").rglob("__init__.py")):
        rel = init.parent.relative_to(ROOT).as_posix()
        name = next((pkg for pkg, d in dirs.items() if d == rel), rel.replace("/", "."))
        found.add(name)
    assert found == listed
    assert "cli" not in listed and all(p.startswith("mlxsft") for p in listed)


def test_console_script_points_at_the_cli():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert cfg["project"]["scripts"]["mlxsft"] == "mlxsft.cli.main:main"


def test_the_cli_package_imports_under_mlxsft():
    import mlxsft.cli.main as m

    assert Path(m.__file__).parent.name == "cli"
