"""A tiny study's report.html rendered in headless Chromium (Debian's ``chromium``; ``.ci/run``
installs it): the DOM after load holds the summary, the tables, the figures with their captions and
the reproduce block; at a phone's width (390 px) and a desktop's (1400 px) nothing but the tables'
own scroll boxes is wider than the page, and every image is decoded with a non-zero size.

The report has no script; a probe page beside it shows it in a frame of the width under test and
writes what it measured there into its own DOM, which ``--dump-dom`` prints once all has loaded.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from reportfake import flagged_study

from losslab.report.write import write_report

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.slow
#: Only the rendering needs the browser; the offline-page test runs everywhere.
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium here: `apt-get install -y chromium` (Debian; .ci/run does it as root)"
)

#: Flags that work without a network, a GPU or a user profile (the closed CI machine).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--hide-scrollbars",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--allow-file-access-from-files", "--virtual-time-budget=15000", "--enable-logging=stderr",
         "--v=0"]  # fmt: skip

#: A page that shows the report in a frame ``{width}`` pixels wide (Chromium's windows are at least 500
#: px wide, a frame is as narrow as asked) and, once everything has loaded, writes what it measured
#: inside the frame into its own DOM.
PROBE = """<!DOCTYPE html><html><head><meta charset='utf-8'>
<style>body{{margin:0}}iframe{{border:0;display:block}}</style></head><body>
<iframe id='frame' src='{page}' style='width:{width}px;height:900px'></iframe><script>
window.addEventListener('load', () => {{
  const win = document.getElementById('frame').contentWindow, doc = win.document;
  const width = win.innerWidth;
  const wide = [...doc.body.querySelectorAll('*')]
    .filter(e => !e.closest('.scroll') && e.getBoundingClientRect().right > width + 1)
    .map(e => e.tagName + '.' + e.className);
  const out = {{
    width: width,
    scrollWidth: doc.documentElement.scrollWidth,
    bodyWidth: doc.body.scrollWidth,
    wide: wide.slice(0, 10),
    images: [...doc.images].map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight, i.clientWidth]),
    tables: doc.querySelectorAll('table.results').length,
    captions: doc.querySelectorAll('figcaption').length,
    summary: [...doc.querySelectorAll('.summary li')].map(li => li.textContent),
    headings: [...doc.querySelectorAll('h2[id]')].map(h => h.id),
  }};
  const probe = document.createElement('output');
  probe.id = 'probe';
  probe.textContent = JSON.stringify(out);
  document.body.appendChild(probe);
}});
</script></body></html>"""


def _render(page: Path, width: int, tmp_path: Path) -> tuple[dict, str]:
    """What the probe measured of ``page`` in a frame ``width`` pixels wide, and Chromium's log."""
    probe = page.with_name(f"probe-{width}.html")
    probe.write_text(PROBE.format(page=page.name, width=width))
    args = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / f'profile-{width}'}", "--window-size=1500,1000",
            "--dump-dom", probe.as_uri()]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=180)
    match = re.search(r'<output id="probe">(.*?)</output>', done.stdout, re.S)
    assert match, f"no probe in Chromium's DOM (exit {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(html.unescape(match.group(1))), done.stderr


@pytest.fixture(scope="module")
def report_page(tmp_path_factory) -> Path:
    out = flagged_study(tmp_path_factory.mktemp("browser"), seeds=2, iterations=30)
    write_report(out)
    return out / "report.html"


def test_the_page_loads_offline_in_one_request(report_page):
    text = report_page.read_text()
    assert "<script" not in text and "<link" not in text  # styles inline, no script
    sources = re.findall(r"src='([^']*)'", text)
    assert sources and all(s.startswith("data:image/") for s in sources)


@needs_chromium
@pytest.mark.parametrize("width", [390, 1400])
def test_rendered_dom_fits_the_window_and_decodes_every_image(report_page, tmp_path, width):
    probe, log = _render(report_page, width, tmp_path)
    assert probe["width"] == width
    assert probe["scrollWidth"] <= width and probe["bodyWidth"] <= width, probe
    assert probe["wide"] == [], probe["wide"]  # only the tables' own scroll boxes may be wider
    assert len(probe["images"]) >= 4
    for alt, complete, natural_w, natural_h, shown_w in probe["images"]:
        assert complete and natural_w > 0 and natural_h > 0 and 0 < shown_w <= width, alt
    assert probe["tables"] == 3 and probe["captions"] == len(probe["images"])
    assert probe["summary"][0].startswith("No configuration beat BCE on mask AP")
    assert any(s.startswith("Budget: yolact_tiny") for s in probe["summary"])
    assert {"loss_curves", "samples", "ap_vs_iou"} <= {alt for alt, *_ in probe["images"]}
    assert probe["headings"][0] == "summary" and {"segm", "runs", "reproduce", "plots"} <= set(probe["headings"])
    assert "Uncaught" not in log and "Failed to load resource" not in log
