"""`report.html` of `nertune evaluate`: one self-contained page (inline CSS, the learning curves as a base64 PNG,
no script, nothing fetched) with the scores per type and their bootstrap intervals, the row-normalised confusion
matrix with its boundary and missed columns, and the sentences with the most errors, gold and predicted entities
side by side."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

from nertune.evaluation.plots import row_normalised
from nertune.evaluation.report import ERROR_KINDS, bootstrap_f1_ci, sentence_error_counts
from nertune.schemes import normalize_scheme, tags_to_spans

__all__ = ["TYPE_COLOURS", "type_colours", "write_html_report"]

# Light backgrounds that black text reads on, distinct from each other (the demo page uses the same list).
TYPE_COLOURS = ("#8ecae6", "#ffb703", "#95d5b2", "#f4a3c0", "#cdb4db", "#f9c74f", "#a3c4f3", "#ffadad",
                "#b5e48c", "#ffd6a5", "#bde0fe", "#d8e2dc")  # fmt: skip
WORST_SENTENCES = 15

CSS = """
body {
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2330;
  margin: 0; background: #f4f6fa; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 32px 0 10px; }
.sub { color: #5a6478; margin: 0 0 18px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; }
.card { background: #fff; border-radius: 8px; padding: 10px 16px; box-shadow: 0 1px 3px #0001; min-width: 120px; }
.card b { display: block; font-size: 20px; } .card span { color: #5a6478; font-size: 12px; }
table {
  border-collapse: collapse; background: #fff;
  box-shadow: 0 1px 3px #0001; border-radius: 8px; overflow: hidden; }
th, td { padding: 6px 12px; text-align: right; border-bottom: 1px solid #e8ebf1; }
th { background: #eef1f6; font-weight: 600; } th:first-child, td:first-child { text-align: left; }
.ci { color: #6b7385; font-size: 12px; margin-left: 4px; }
.swatch {
  display: inline-block; width: 12px; height: 12px;
  border-radius: 3px; margin-right: 6px; vertical-align: -1px; }
.bar {
  display: inline-block; width: 90px; height: 8px;
  background: #e8ebf1; border-radius: 4px; position: relative; margin-left: 8px; }
.bar i { position: absolute; top: 0; bottom: 0; left: 0; background: #3a86ff; border-radius: 4px; }
.bar s {
  position: absolute; top: -3px; bottom: -3px;
  border-left: 2px solid #1d2330; border-right: 2px solid #1d2330; opacity: .45; }
table.cm td { text-align: center; min-width: 64px;  }
table.cm td small { display: block; font-size: 11px; opacity: .75; }
table.cm th.err, table.cm td.err { border-left: 2px solid #9aa3b5; }
.worst td, .worst th { text-align: left; vertical-align: top; }
.worst td:first-child { color: #6b7385; white-space: nowrap; }
mark.ent { background: var(--c); border-radius: 4px; padding: 1px 4px; margin: 0 1px; }
mark.ent sup { font-size: 9px; font-weight: 700; margin-left: 3px; color: #1d2330b0; }
mark.ent.wrong { outline: 2px solid #d62828; outline-offset: 1px; }
.legend { margin: 6px 0 10px; color: #5a6478; font-size: 12px; }
img.curves { max-width: 100%; background: #fff; border-radius: 8px; box-shadow: 0 1px 3px #0001; }
"""


def type_colours(types: Sequence[str]) -> dict[str, str]:
    """One colour per entity type, in the given order (the palette repeats past its end)."""
    return {t: TYPE_COLOURS[i % len(TYPE_COLOURS)] for i, t in enumerate(types)}


def _e(value: object) -> str:
    return html.escape(str(value))


def _swatch(colour: str) -> str:
    return f'<span class="swatch" style="background:{colour}"></span>'


def _with_ci(value: float, ci: list[float] | None) -> str:
    interval = f'<span class="ci">[{ci[0]:.3f}, {ci[1]:.3f}]</span>' if ci else ""
    return f"{value:.4f}{interval}"


def _f1_bar(value: float, ci: list[float] | None) -> str:
    whisker = f'<s style="left:{ci[0]:.1%};width:{max(ci[1] - ci[0], 0.0):.1%}"></s>' if ci else ""
    return f'<span class="bar"><i style="width:{value:.1%}"></i>{whisker}</span>'


def _per_type_table(scores: dict, intervals: dict, colours: dict[str, str]) -> str:
    rows = []
    for t, row in sorted(scores["per_type"].items()):
        ci = intervals.get(t, {})
        rows.append(
            f'<tr data-type="{_e(t)}"><td>{_swatch(colours.get(t, "#ccc"))}{_e(t)}</td><td>{row["support"]}</td>'
            f"<td>{_with_ci(row['precision'], ci.get('precision_ci'))}</td>"
            f"<td>{_with_ci(row['recall'], ci.get('recall_ci'))}</td>"
            f"<td>{_with_ci(row['f1'], ci.get('f1_ci'))}{_f1_bar(row['f1'], ci.get('f1_ci'))}</td></tr>"
        )
    micro_ci = scores.get("f1_ci95")
    rows.append(
        f'<tr class="micro"><th>micro avg</th><th>{sum(r["support"] for r in scores["per_type"].values())}</th>'
        f"<th>{scores['precision']:.4f}</th><th>{scores['recall']:.4f}</th>"
        f"<th>{_with_ci(scores['f1'], micro_ci)}</th></tr>"
    )
    head = "<tr><th>type</th><th>support</th><th>precision</th><th>recall</th><th>F1</th></tr>"
    return f'<table id="per-type"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _confusion_table(matrix: dict, colours: dict[str, str]) -> str:
    counts, shares, totals = row_normalised(matrix)
    n_types = len(matrix["pred_labels"]) - 2  # the last two columns: boundary and missed
    head = "".join(
        f"<th{' class=err' if j >= n_types else ''}>{_e(label)}</th>" for j, label in enumerate(matrix["pred_labels"])
    )
    rows = []
    for i, gold_label in enumerate(matrix["gold_labels"]):
        cells = []
        for j in range(len(matrix["pred_labels"])):
            share, count = shares[i, j], int(counts[i, j])
            # Blue for right answers (the diagonal), red for errors; the share sets the strength.
            hue = "58,134,255" if i == j else "214,40,40"
            style = f' style="background:rgba({hue},{0.08 + 0.8 * share:.2f})"' if count else ""
            text = f"{share:.0%}<small>{count}</small>" if count else ""
            klass = ' class="err"' if j >= n_types else ""
            cells.append(f"<td{klass}{style}>{text}</td>")
        colour = colours.get(gold_label)
        label = (_swatch(colour) if colour else "") + f"{_e(gold_label)} <small>({int(totals[i])})</small>"
        rows.append(f'<tr data-gold="{_e(gold_label)}"><th>{label}</th>{"".join(cells)}</tr>')
    return (
        f'<table class="cm" id="confusion"><thead><tr><th>gold \\ predicted</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _highlight(words: Sequence[str], spans: list, others: set, colours: dict[str, str]) -> str:
    """The sentence with its entities marked; an entity the other side lacks is outlined in red."""
    starts = {s[1]: s for s in spans}
    out, i = [], 0
    while i < len(words):
        span = starts.get(i)
        if span is None:
            out.append(_e(words[i]))
            i += 1
            continue
        type_, start, end = span
        klass = "ent" if span in others else "ent wrong"
        text = " ".join(_e(w) for w in words[start:end])
        out.append(
            f'<mark class="{klass}" data-type="{_e(type_)}" style="--c:{colours.get(type_, "#ddd")}">'
            f"{text}<sup>{_e(type_)}</sup></mark>"
        )
        i = max(end, i + 1)
    return " ".join(out)


def _worst_sentences(gold, predicted, words, scheme: str, colours: dict[str, str]) -> str:
    errors = sentence_error_counts(gold, predicted, scheme)
    worst = sorted((i for i, n in enumerate(errors) if n), key=lambda i: (-errors[i], i))[:WORST_SENTENCES]
    if not worst:
        return '<p id="worst">No sentence has an error.</p>'
    rows = []
    for i in worst:
        g, p = tags_to_spans(gold[i], scheme), tags_to_spans(predicted[i], scheme)
        rows.append(
            f'<tr data-sentence="{i}"><td>#{i}<br><small>{errors[i]} errors</small></td>'
            f'<td class="gold">{_highlight(words[i], g, set(p), colours)}</td>'
            f'<td class="pred">{_highlight(words[i], p, set(g), colours)}</td></tr>'
        )
    head = "<tr><th>sentence</th><th>gold</th><th>predicted</th></tr>"
    return f'<table class="worst" id="worst"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _embedded_png(png: Path, heading: str, alt: str) -> str:
    """The PNG inline (base64), under an `<h2>` when `heading` is given; "" when it was not written."""
    if not png.is_file():
        return ""
    image = (
        f'<img class="curves" alt="{alt}" src="data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}">'
    )
    return f"<h2>{heading}</h2>{image}" if heading else image


def write_html_report(
    path: str | Path,
    name: str,
    scores: dict,
    analysis: dict,
    gold: Sequence[Sequence[str]],
    predicted: Sequence[Sequence[str]],
    words: Sequence[Sequence[str]],
    scheme: str,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> Path:
    """Write `path` from `run_evaluation`'s scores and `error_analysis`; embeds `learning_curves.png` from the
    same folder when it is there. The per-type intervals come from `bootstrap_f1_ci` (none with n_bootstrap=0)."""
    path = Path(path)
    scheme = normalize_scheme(scheme)
    strict = scores.get("mode") == "strict"
    intervals = (
        bootstrap_f1_ci(gold, predicted, scheme, n=n_bootstrap, seed=seed, strict=strict)["per_type"]
        if n_bootstrap > 0
        else {}
    )
    types = sorted(set(scores["per_type"]) | set(analysis["confusion_matrix"]["gold_labels"][:-1]))
    colours = type_colours(types)
    counts, n_gold = analysis["counts"], analysis["n_gold"]
    ci = scores.get("f1_ci95")
    cards = [
        (f"{scores['f1']:.4f}", f"micro F1 ({scores.get('mode', 'default')})"),
        (f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "n/a", f"95% CI, {n_bootstrap} sentence resamples"),
        (f"{scores['precision']:.4f}", "precision"),
        (f"{scores['recall']:.4f}", "recall"),
        (f"{analysis['n_sentences']}", "sentences"),
        (f"{n_gold}", "gold entities"),
    ]
    kinds = "".join(
        f"<tr><td>{kind}</td><td>{counts[kind]}</td><td>"
        + (
            f"{counts[kind] / max(n_gold, 1):.1%} of gold"
            if kind != "spurious"
            else f"{counts[kind] / max(analysis['n_pred'], 1):.1%} of predicted"
        )  # fmt: skip
        + "</td></tr>"
        for kind in ERROR_KINDS
    )
    curves_html = _embedded_png(path.parent / "learning_curves.png", "Learning curves", "learning curves")
    calibration_html = (
        f'<h2>Calibration</h2><p class="legend" id="ece">Expected calibration error of the word scores: '
        f"{scores['ece']:.4f} (the model's scores against how often they are right).</p>"
        + _embedded_png(path.parent / "reliability.png", "", "reliability diagram")
        if "ece" in scores
        else ""
    )
    body = f"""<main>
<h1>{_e(name)}</h1>
<p class="sub">split {_e(scores.get("split", ""))} &middot; scheme {_e(scheme)} &middot; entity level,
{_e(scores.get("mode", "default"))} mode</p>
<div class="cards">{"".join(f"<div class=card><b>{v}</b><span>{_e(k)}</span></div>" for v, k in cards)}</div>
<h2>Per type</h2>
<p class="legend">95% percentile bootstrap intervals in brackets (sentences resampled, seed {seed}); the bar is F1,
its whiskers the interval.</p>
{_per_type_table(scores, intervals, colours)}
<h2>Confusion matrix</h2>
<p class="legend">Rows: gold entities of each type (count in brackets), each row adding up to 100%. Columns: the type
of the best overlapping prediction; <b>boundary</b>: the right type with another span; <b>missed</b>: no overlapping
prediction. The last row: predictions that overlap no gold entity, by type.</p>
{_confusion_table(analysis["confusion_matrix"], colours)}
<h2>Errors by kind</h2>
<table id="kinds"><thead><tr><th>kind</th><th>entities</th><th>share</th></tr></thead><tbody>{kinds}</tbody></table>
<h2>Sentences with the most errors</h2>
<p class="legend">Errors: gold entities not predicted exactly plus predictions not in gold. Outlined in red: an
entity that the other side does not have with the same span and type.</p>
{_worst_sentences(gold, predicted, words, scheme, colours)}
{calibration_html}
{curves_html}
</main>"""
    page = (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(name)}: nertune evaluation</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
        f"<body>{body}</body></html>\n"
    )
    path.write_text(page, encoding="utf-8")
    return path
