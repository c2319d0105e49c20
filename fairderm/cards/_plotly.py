"""Plotly figures in a self-contained HTML page, with plotly.js packed once.

plotly.js is 4.8 MB of text; inlined as it is, every card and figures page
of every run carried those bytes. Here it is gzip-compressed and
base64-encoded (about 1.9 MB) and unpacked by the browser's own
``DecompressionStream`` (Chromium 80, Firefox 113, Safari 16.4), so the page
still opens offline, without a network request. Each figure is a ``<div>``
with its plotly JSON beside it in a ``<script type="application/json">``,
drawn once plotly.js is unpacked; a browser that cannot unpack it says so in
each figure's place (the card's tables hold every number).
"""

from __future__ import annotations

import base64
import functools
import gzip
import html
import json
from typing import Any

from fairderm._io import json_default

_LOADER = """<script>
(async () => {
  const figures = document.querySelectorAll("script[data-plotly-figure]");
  if (!("DecompressionStream" in window)) {
    for (const node of figures) {
      document.getElementById(node.dataset.plotlyFigure).textContent =
        "This browser cannot unpack the charts; the tables hold the same numbers.";
    }
    return;
  }
  const packed = document.getElementById("plotly-js-gzip").textContent;
  const bytes = Uint8Array.from(atob(packed), (c) => c.charCodeAt(0));
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  (0, eval)(await new Response(stream).text());
  for (const node of figures) {
    const spec = JSON.parse(node.textContent);
    Plotly.newPlot(node.dataset.plotlyFigure, spec.data, spec.layout, spec.config);
  }
})();
</script>"""


@functools.cache
def _packed_plotly_js() -> str:
    """plotly.js, gzip-compressed (mtime 0, so the bytes never change) and base64-encoded."""
    from plotly.offline import get_plotlyjs

    return base64.b64encode(gzip.compress(get_plotlyjs().encode("utf-8"), compresslevel=9, mtime=0)).decode("ascii")


def figure_fragment(figure: dict[str, Any], div_id: str, config: dict[str, Any] | None = None) -> str:
    """A figure's ``<div>`` and its plotly JSON (``data``, ``layout``, ``config``), drawn by :func:`plotly_loader`.

    The JSON sits in a non-executed script element; ``</`` is written ``<\\/``
    so that no label can close that element.
    """
    spec = {"data": figure.get("data", []), "layout": figure.get("layout", {}), "config": config or {}}
    text = json.dumps(spec, separators=(",", ":"), default=json_default, allow_nan=False).replace("</", "<\\/")
    name = html.escape(div_id, quote=True)
    return (f'<div id="{name}" class="plotly-figure"></div>'
            f'<script type="application/json" data-plotly-figure="{name}">{text}</script>')


def plotly_loader() -> str:
    """The one script that unpacks plotly.js and draws every figure of the page (put it after them)."""
    return (f'<script type="application/octet-stream" id="plotly-js-gzip">{_packed_plotly_js()}</script>\n'
            + _LOADER)
