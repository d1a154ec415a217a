"""The report renders in a real browser (headless Chromium from Debian's `chromium`): slow, CI skips it."""

import shutil
import subprocess

import pytest
import torch

from synthclone.report.document import Document, Figure, Heading, Paragraph, Table, write
from synthclone.report.grids import class_grid, save_png

pytestmark = pytest.mark.slow

CHECK = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const ok = imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
  document.title = `imgs=${imgs.length} ok=${ok} tables=${document.querySelectorAll('table').length} rows=${document.querySelectorAll('tr').length}`;
});
</script>"""


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("headless Chromium is needed for this test: apt-get install chromium")


def test_report_renders_tables_and_images_in_chromium(tmp_path):
    imgs = torch.randint(0, 255, (40, 1, 28, 28), dtype=torch.uint8)
    grid = save_png(class_grid(imgs, torch.arange(40) % 4, ["a", "b", "c", "d"], per_class=5), tmp_path / "g.png")
    doc = Document("Rendering check <b>escaped</b>")
    doc.add(Heading("Table")).add(Table(["model", "acc"], [["real/s0", 0.9], ["synthetic:<x>", 0.5]]))
    doc.add(Paragraph("text")).add(Figure(grid, "grid"))
    html_path, _ = write(doc, tmp_path / "report")
    probe = tmp_path / "probe.html"
    probe.write_text(html_path.read_text().replace("</body>", CHECK + "</body>"))
    out = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=3000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert "<title>imgs=1 ok=true tables=1 rows=3</title>" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
    assert "synthetic:&lt;x&gt;" in out.stdout
