"""The report as one self-contained HTML file: inline CSS, charts as inline SVG, pictures as data: URLs, no script
and nothing fetched. Every string from a model, a check or a user passes through `escape`."""

from __future__ import annotations

import base64
import json
from html import escape
from string import Template

from .base import Section, Table

PAGE = Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.25rem .55rem;text-align:left;vertical-align:top}
th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums}
.partial{background:#fff3cd;border:2px solid #d39e00;padding:.6rem 1rem;font-weight:600}
.error{background:#fde2e1;border:1px solid #c0392b;padding:.5rem 1rem}
section.check{border-top:3px solid #1f77b4;margin-top:2rem;padding-top:.4rem}
.paper{background:#eef5fb;padding:.4rem .8rem;border-left:4px solid #1f77b4}
figure{margin:1rem 0} figcaption{font-size:.85rem;color:#555} img{max-width:100%;image-rendering:pixelated}
.muted{color:#666;font-size:.85rem}
</style></head>
<body>
<h1>$title</h1>
$banner
<p class="muted">Made $made on $domain_title images · $size size · $seconds s in all · seed $seed.</p>
<h2>Summary: the papers' numbers beside ours</h2>
$summary
$skipped
$sections
<h2>Settings and versions</h2>
$environment
</body></html>
""")


def _cell(v) -> str:
    if v is None:
        return "<td>—</td>"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return f"<td>{escape(str(v))}</td>"
    shown = f"{v:d}" if isinstance(v, int) else f"{v:.4g}" if abs(v) < 1000 else f"{v:.0f}"
    return f'<td class="num">{escape(shown)}</td>'


def table(columns: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _value(v) -> str:
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)


def _pairs(items: dict) -> str:
    return table(["setting", "value"], [[k, _value(v)] for k, v in items.items()])


def _table(t: Table) -> str:
    return f"<h4>{escape(t.title)}</h4>" + table(t.columns, t.rows)


def _figures(section: Section) -> str:
    out = []
    for f in section.figures:
        body = ""
        if f.png is not None:
            data = base64.b64encode(f.png).decode("ascii")
            body = f'<img alt="{escape(f.title)}" src="data:image/png;base64,{data}">'
        elif f.svg:
            body = f.svg  # made by engine.seed_report.figures, which escapes every label
        caption = escape(f.title) + (f" — {escape(f.caption)}" if f.caption else "")
        out.append(f"<figure>{body}<figcaption>{caption}</figcaption></figure>")
    return "".join(out)


def _section(entry: dict) -> str:
    name, title, seed, claim, paper = (escape(entry[k]) for k in ("name", "title", "seed", "claim", "paper"))
    head = (
        f'<section class="check" id="{name}"><h2>{title}</h2>'
        f"<p><b>Source:</b> {seed}<br><b>Claim:</b> {claim}</p>"
        f'<p class="paper"><b>Paper:</b> {paper}'
    )
    section: Section | None = entry.get("section")
    if section is None:
        error = escape(entry.get("error", "unknown error"))
        return head + f'</p><p class="error">This check failed: {error}</p></section>'
    return (
        head
        + f"<br><b>Here:</b> {escape(section.headline)}</p>"
        + "".join(_table(t) for t in section.tables)
        + _figures(section)
        + "".join(f"<p>{escape(n)}</p>" for n in section.notes)
        + f"<h4>Settings</h4>{_pairs(section.settings)}"
        + f'<p class="muted">{entry["seconds"]:.0f} s.</p></section>'
    )


def _summary(report: dict) -> str:
    rows = [
        [c["title"], c["seed"].split(" — ")[0], c["paper"], c["section"].headline if c.get("section") else "failed"]
        for c in report["checks"]
    ]
    rows += [[n, "—", "—", "not run: the report was cancelled"] for n in report["not_run"]]
    return table(["check", "seed", "paper", "here"], rows)


def render(report: dict) -> str:
    """The whole HTML page of `runner.run`'s report."""
    partial = report["partial"]
    banner = (
        '<p class="partial">PARTIAL REPORT: cancelled after '
        f"{len(report['checks'])} check(s); not run: {escape(', '.join(report['not_run']))}.</p>"
        if partial
        else ""
    )
    skipped = (
        "<h3>Checks that do not apply to this model</h3>"
        + table(["check", "source", "why not"], [[s["title"], s["seed"], s["reason"]] for s in report["skipped"]])
        if report["skipped"]
        else ""
    )
    title = f"Seed report: {report['model']}" + (" (PARTIAL)" if partial else "")
    return PAGE.substitute(
        title=escape(title),
        banner=banner,
        made=escape(report["made"]),
        domain_title=escape(report["domain"]),
        size=escape(report["size"]),
        seconds=escape(f"{report['seconds']:.0f}"),
        seed=escape(str(report["seed"])),
        summary=_summary(report),
        skipped=skipped,
        sections="".join(_section(c) for c in report["checks"]),
        environment=_pairs({"model": report["model"], **report["environment"]}),
    )
