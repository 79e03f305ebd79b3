"""Debian's headless chromium driven by selenium, for the report tests: open a page, read its console, shoot it.

    with chromium() as driver:              # pytest.skip (one line saying why) when chromium is missing
        driver.get(path.as_uri()); severe_logs(driver); screenshot(driver, out)
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
DRIVER = "chromedriver"
SIZE = (1280, 900)


def _find(names: tuple[str, ...]) -> str | None:
    return next((p for p in map(shutil.which, names) if p), None)


@contextmanager
def chromium(size: tuple[int, int] = SIZE) -> Iterator["object"]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
    binary, driver_path = _find(CHROMIUM), _find((DRIVER,))
    if binary is None or driver_path is None:
        pytest.skip(f"no {'chromium' if binary is None else 'chromedriver'} on PATH (apt-get install chromium "
                    f"chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={size[0]},{size[1]}", "--hide-scrollbars", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # the test run preloads OpenBLAS (for MLX); chromium's renderer crashes with it ("tab crashed")
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    driver = webdriver.Chrome(service=Service(driver_path, env=env), options=opts)
    try:
        viewport(driver, *size)
        yield driver
    finally:
        driver.quit()


def viewport(driver, width: int, height: int) -> None:
    """The page's viewport exactly ``width`` x ``height`` CSS pixels (a window size would include its frame)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


def severe_logs(driver) -> list[dict]:
    """The console's SEVERE entries (errors) since the last call."""
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def screenshot(driver, out: Path) -> Path:
    """The viewport as PNG at ``out``, also copied to ``$MLXSFT_ARTIFACTS`` when that is set."""
    out.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(out))
    folder = os.environ.get("MLXSFT_ARTIFACTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(out, Path(folder) / out.name)
    return out
