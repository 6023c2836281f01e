"""engine.console.charts: figures in the house style, built in one construction."""

from __future__ import annotations

import pandas as pd

from engine.console import charts


def test_fixed_margins_unless_labels_must_fit() -> None:
    fixed = charts.figure([], "t", unit="seconds", xaxis={"title": {"text": "x"}})
    margin = fixed.layout.margin
    assert (margin.l, margin.b, margin.autoexpand) == (charts.Y_TICKS_MARGIN,
                                                       charts.X_TICKS_MARGIN + charts.TITLE_MARGIN, False)
    assert fixed.layout.xaxis.automargin is False and fixed.layout.yaxis.ticksuffix == " ms"
    assert fixed.layout.hovermode == "x unified" and fixed.layout.title.text == "t"
    fitted = charts.figure([], fit_labels=True)
    assert fitted.layout.margin.l == 8 and fitted.layout.xaxis.automargin is None
    assert fitted.layout.hovermode == "closest" and fitted.layout.title.text is None


def test_rules_draw_a_dotted_line_and_a_label() -> None:
    target = charts.Rule(200.0, label="target 200 ms")
    zero = charts.Rule(0, axis="x", color=charts.ZERO_COLOR)
    fig = charts.figure([], rules=[target, zero])
    horizontal, vertical = fig.layout.shapes
    assert (horizontal.y0, horizontal.y1, horizontal.xref, horizontal.line.dash) == (200, 200, "x domain", "dot")
    assert (vertical.x0, vertical.yref, vertical.line.color) == (0, "y domain", charts.ZERO_COLOR)
    (note,) = fig.layout.annotations  # the zero line has no label
    assert (note.text, note.y, note.x) == ("target 200 ms", 200, 0)


def test_line_and_bar_charts() -> None:
    frame = pd.DataFrame({"t": [1, 2, 1, 2], "v": [1.0, 2.0, 3.0, 4.0], "s": ["b", "b", "a", "a"]})
    lines = charts.line_chart(frame, "t", "v", "s", "title")
    assert [t.name for t in lines.data] == ["b", "a"]  # order of appearance
    assert list(lines.data[1].y) == [3.0, 4.0] and lines.layout.showlegend is True
    bars = charts.hbar_chart(["first", "second"], [2.0, 1.0], text=["2", "1"])
    assert bars.data[0].orientation == "h" and list(bars.data[0].text) == ["2", "1"]
    assert bars.layout.yaxis.autorange == "reversed"  # the first label on top
    assert charts.scale("seconds") == 1000.0 and charts.scale("percent") == 1.0
