"""Screenshots of the Temporal UI as an operator sees it: the workflow list filtered to one
directory, and that directory's sync with its (decrypted) summary and details.

    python -m tests.support.ui_screenshot --ui http://127.0.0.1:8233 --directory dir_… [--out ui-screenshots]

Needs Debian's `chromium` (``scripts/install-test-services``). The UI is a single-page app,
so Chromium runs with a virtual time budget (headless Chromium prints before the app has
rendered otherwise); each page is rendered
twice, once to a PNG and once to its DOM, which the suite reads to check what the PNG shows.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,900",
    "--virtual-time-budget=15000",
    "--hide-scrollbars",
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise SystemExit("chromium is missing: scripts/install-test-services installs it")
    return found


def render(url: str, png: Path, timeout: float = 90) -> str:
    """Writes the page's screenshot to ``png`` and returns its rendered DOM."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}", url],
            check=True,
            capture_output=True,
            timeout=timeout,
        )
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
            check=True,
            capture_output=True,
            timeout=timeout,
        ).stdout.decode()
    png.with_suffix(".html").write_text(dom)
    return dom


def capture(ui: str, directory_id: str, out: Path, namespace: str = "default") -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    query = quote(f"DirectoryId = '{directory_id}'")
    listing = out / "workflows-of-directory.png"
    dom = render(f"{ui}/namespaces/{namespace}/workflows?query={query}", listing)
    runs = re.findall(rf"/workflows/dirsync%2F{re.escape(directory_id)}/([0-9a-f-]{{36}})", dom)
    if not runs:
        raise SystemExit(f"the list shows no sync of {directory_id}; see {listing}")
    detail = out / "directory-sync.png"
    render(
        f"{ui}/namespaces/{namespace}/workflows/{quote('dirsync/' + directory_id, safe='')}/{runs[0]}/user-metadata",
        detail,
    )
    return {"list": listing, "detail": detail}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ui", default="http://127.0.0.1:8233", help="the Temporal UI's base URL")
    parser.add_argument("--directory", required=True, help="the directory ID to filter on")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--out", type=Path, default=Path("ui-screenshots"))
    args = parser.parse_args()
    for what, path in capture(args.ui.rstrip("/"), args.directory, args.out, args.namespace).items():
        print(f"{what}: {path}")


if __name__ == "__main__":
    main()
