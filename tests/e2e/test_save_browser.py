"""Save to my computer, in Chromium: files from the kernel saved by the browser over the widget
channel in JupyterLab (a download link, and the File System Access API streaming to a real
file), Cancel half way on both sides, and a file deleted during the transfer. The demo
dashboard's "Save to my computer" is tested in test_dashboard_browser.py."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import nbformat

from tests.e2e.browser import cell_output, open_lab_notebook, run_cell, screenshot

MIB = 120  # large enough that Cancel and a deletion land half way
SETUP = f"""
import hashlib, os, threading
from pathlib import Path
import jobtask_widgets as jw

folder = Path("save-data").resolve()
folder.mkdir(exist_ok=True)
big, small = folder / "big.bin", folder / "small.txt"
with open(big, "wb") as f:
    for i in range({MIB}):
        f.write(hashlib.shake_256(str(i).encode()).digest(1 << 20))
small.write_text("small " * 100)
print("sha256", hashlib.sha256(big.read_bytes()).hexdigest())
jw.save_to_browser(big)
"""
CELLS = [
    SETUP,
    'picked = jw.BrowserSave(big, "picked.bin")\npicked',
    'halted = jw.save_to_browser(big, "halted.bin")\nhalted',
    "open_files = [fd for fd in os.listdir('/proc/self/fd') if os.path.realpath(f'/proc/self/fd/{fd}') == str(big)]\n"
    "print('kernel', halted.status, halted.busy, len(open_files), [t.name for t in threading.enumerate()"
    " if 'save' in t.name.lower()])",
    'pair = jw.save_to_browser([big, small], "pair.zip")\npair',
    'small.unlink()\nprint("deleted")',
]

# Headless Chromium answers every file picker with AbortError: the page gets a picker that
# writes to the origin-private file system instead (a real FileSystemWritableFileStream). It
# refuses (as a sandboxed frame does) until the test turns it on, since Playwright's evaluate
# counts as a user's click and would otherwise take the picker for every save.
PICKER = """
window.__picked = [];
window.__pickerOn = false;
Object.defineProperty(window, "showSaveFilePicker", { configurable: true, value: async ({ suggestedName }) => {
  if (!window.__pickerOn) throw Object.assign(new Error("not allowed here"), { name: "SecurityError" });
  window.__picked.push(suggestedName);
  const root = await navigator.storage.getDirectory();
  return root.getFileHandle(suggestedName, { create: true });
} });
"""
OPFS_SHA256 = """async (name) => {
  const root = await navigator.storage.getDirectory();
  const file = await (await root.getFileHandle(name)).getFile();
  const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
  return [file.size, [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("")];
}"""


def save_view(index: int) -> str:
    return f".jp-Notebook .jp-Cell:nth-child({index + 1}) .jobtask-save"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


CLICK_CANCEL_AT_FIRST_PROGRESS = """(selector) => {
    const observer = new MutationObserver(() => {
        const view = document.querySelector(selector);
        const bar = view && view.querySelector("progress");
        const button = view && view.querySelector(".jobtask-save-cancel");
        if (bar && button && bar.value > 0 && bar.value < bar.max) {
            observer.disconnect();
            window.__cancelClickedAt = bar.value;
            button.click();
        }
    });
    observer.observe(document.body, { subtree: true, childList: true, attributes: true });
}"""


def test_save_to_the_browser_in_jupyterlab(page: Any, lab_url: str, notebook_dir: Path, tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    nb.cells = [nbformat.v4.new_code_cell(code) for code in CELLS]
    nbformat.write(nb, notebook_dir / "save_to_browser.ipynb")
    page.add_init_script(PICKER)
    open_lab_notebook(page, lab_url, "save_to_browser.ipynb")

    # displayed: the save starts by itself; no click, so no picker: a download link
    with page.expect_download(timeout=180_000) as event:
        run_cell(page, 0)
        saved = f"() => document.querySelector('{save_view(0)}')?.dataset.state === 'saved'"
        page.wait_for_function(saved, timeout=180_000)
    download = event.value
    assert download.suggested_filename == "big.bin"
    download.save_as(tmp_path / "big.bin")
    kernel_sha = cell_output(page, 0, "sha256").split("sha256 ")[1][:64]
    assert sha256(tmp_path / "big.bin") == kernel_sha
    assert (tmp_path / "big.bin").stat().st_size == MIB << 20
    assert page.locator(f"{save_view(0)} .jobtask-save-message").inner_text() == "Saved big.bin"
    screenshot(page, "save-lab-1-downloaded")

    # a click on the link: the File System Access API, streamed to a file the "user" chose
    run_cell(page, 1)
    page.evaluate("window.__pickerOn = true")
    page.locator(f"{save_view(1)} a.jobtask-save-link").click(timeout=60_000)
    page.wait_for_function(f"() => document.querySelector('{save_view(1)}').dataset.state === 'saved'", timeout=180_000)
    assert page.evaluate("window.__picked") == ["picked.bin"]
    assert page.evaluate(OPFS_SHA256, "picked.bin") == [MIB << 20, kernel_sha]

    # Cancel half way: nothing saved, the kernel's file closed
    page.evaluate("window.__pickerOn = false")
    downloads: list[Any] = []
    page.on("download", lambda download: downloads.append(download))
    # the page clicks Cancel itself at the first progress: 120 MB may take well under a second, faster
    # than a round trip of the test's own click
    page.evaluate(CLICK_CANCEL_AT_FIRST_PROGRESS, save_view(2))
    run_cell(page, 2)
    page.wait_for_function(f"() => document.querySelector('{save_view(2)}')?.dataset.state === 'cancelled'",
                           timeout=60_000)  # fmt: skip
    assert page.evaluate("window.__cancelClickedAt") > 0  # clicked half way, not at the end
    screenshot(page, "save-lab-2-cancelled")
    assert page.locator(f"{save_view(2)} .jobtask-save-message").inner_text() == "Cancelled; nothing was saved."
    run_cell(page, 3)
    assert "kernel cancelled False 0 []" in cell_output(page, 3, "kernel ")

    # a file deleted while the ZIP is sent: the transfer ends with its name, nothing is saved
    run_cell(page, 4)
    page.wait_for_function(f"() => document.querySelector('{save_view(4)} progress').value > 0", timeout=60_000)
    run_cell(page, 5)
    message = page.locator(f"{save_view(4)} .jobtask-save-message.error")
    message.wait_for(timeout=120_000)
    assert "small.txt vanished before it was sent" in message.inner_text()
    screenshot(page, "save-lab-3-file-deleted")
    page.wait_for_timeout(500)
    assert downloads == []
    assert page.errors == []
