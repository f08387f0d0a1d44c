"""``REPORT.html``: one offline page (no external resource) with every run in an output folder: its PNG, its
claims (status coloured; statement, theory, measured, statistic, note), the overrides against its preset, the
provenance and the run time. Written atomically beside ``REPORT.md`` from the same claims files."""

from __future__ import annotations

import html
import json
from pathlib import Path

from figures._claims import write_text_atomic

__all__ = ["write_html"]

COLORS = {"pass": "#1b7f3b", "not reproduced": "#b26a00", "n/a": "#5f6b7a", "FAIL": "#c0152f"}
CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
h1{font-size:1.6em} h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ccc}
img{max-width:100%;border:1px solid #eee} table{border-collapse:collapse;font-size:.85em;width:100%}
td,th{border:1px solid #ddd;padding:4px 6px;vertical-align:top;text-align:left} th{background:#f4f4f4}
.status{font-weight:bold;color:#fff;padding:1px 6px;border-radius:3px;white-space:nowrap}
.meta{color:#555;font-size:.85em} .over{color:#8a2be2}
"""


def _esc(x) -> str:
    return html.escape(str(x))


def write_html(out: Path) -> Path:
    """Rebuild ``out/REPORT.html`` from the ``*.claims.json`` there (an unreadable one is named, not shown)."""
    sections, totals, bad = [], {}, []
    for p in sorted(out.glob("*.claims.json")):
        try:
            rec = json.loads(p.read_text())
            claims = rec["claims"]
            stem = p.name[: -len(".claims.json")]
        except (OSError, ValueError, KeyError, TypeError):
            bad.append(p.name)
            continue
        rows = []
        for c in claims:
            st = c.get("status", "?")
            totals[st] = totals.get(st, 0) + 1
            note = c.get("not_applicable") or c.get("finding", "")
            rows.append(f'<tr class="claim" data-status="{_esc(st)}"><td>{_esc(c.get("id"))}</td>'
                        f'<td>{_esc(c.get("statement"))}</td><td>{_esc(c.get("theory"))}</td>'
                        f'<td>{_esc(c.get("measured"))}</td><td>{_esc(c.get("statistic"))}</td>'
                        f'<td><span class="status" style="background:{COLORS.get(st, "#333")}">{_esc(st)}</span>'
                        f'</td><td>{_esc(note)}</td></tr>')
        over = rec.get("overrides") or []
        prov = rec.get("provenance", {})
        meta = (f'preset <b>{_esc(rec.get("preset", ""))}</b>'
                + (f' <span class="over">+ {_esc(", ".join(over))}</span>' if over else "")
                + f' &middot; {rec.get("seconds", "?")} s &middot; {_esc(rec.get("paper", ""))}<br>'
                + " &middot; ".join(f"{k} {_esc(prov[k])}" for k in ("git_commit", "code_id", "jax_version",
                                                                     "device_kind", "n_runs", "n_diverged")
                                    if k in prov))
        img = f'<img src="{_esc(stem)}.png" alt="{_esc(stem)}">' if (out / f"{stem}.png").exists() else ""
        sections.append(f'<section id="{_esc(stem)}"><h2>{_esc(stem)}</h2><p class="meta">{meta}</p>{img}'
                        '<table><tr><th>claim</th><th>statement</th><th>theory</th><th>simulated</th>'
                        '<th>statistic</th><th>status</th><th>note</th></tr>' + "".join(rows) + "</table></section>")
    n = sum(totals.values())
    summary = f'<p id="summary" data-claims="{n}">{n} claims: ' + ", ".join(
        f'{v} <span class="status" style="background:{COLORS.get(k, "#333")}">{_esc(k)}</span>'
        for k, v in sorted(totals.items(), key=lambda kv: list(COLORS).index(kv[0]) if kv[0] in COLORS else 9)) + "</p>"
    if bad:
        summary += f"<p>Skipped unreadable claims file(s): {_esc(', '.join(bad))}</p>"
    # after load, the body says how many images decoded (read by the browser test; no external resource)
    script = ("<script>window.addEventListener('load',()=>{const im=[...document.images];"
              "document.body.dataset.images=im.length;"
              "document.body.dataset.imagesLoaded=im.filter(i=>i.complete&&i.naturalWidth>0).length;});</script>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>Claim report</title><style>" + CSS +
            "</style>" + script + "</head><body><h1>Claim report</h1>" + summary + "".join(sections) +
            "</body></html>\n")
    path = out / "REPORT.html"
    write_text_atomic(path, page)
    return path
