"""The report's plots show the data: every line inside its axes, tick labels apart (measured on the
rendered text), backends told apart, failed and suspect points marked and named, legends off the data."""

from __future__ import annotations

import pytest

pytest.importorskip("matplotlib")

from softmax_bench.report import plots  # noqa: E402
from softmax_bench.report.runs import load_runs, merge  # noqa: E402

from golden import OPS, SMALL  # noqa: E402
from helpers import ROOT  # noqa: E402

PUBLISHED = [ROOT / "results" / "check-cpu.json", ROOT / "results" / "timing-cpu-default-a.json"]


def _figures(paths) -> dict[str, plots._Drawn]:
    records = merge(load_runs(paths), warn=lambda message: None)
    styles = plots.backend_styles(records)
    drawn = [*plots.headline_figures(records, styles), *plots.bandwidth_figures(records, styles),
             *plots.peak_figures(records, styles), *plots.error_figures(records, styles)]
    return {d.name: d for d in drawn}


# Drawn and measured (about half a second each): every published figure, and those of the fixtures that
# have what the published ones lack (a suspect point, peak memory, failed and skipped timings).
DRAWN = ("bandwidth-cpu-float32-warm", "bandwidth-cpu-float32-cold", "error-cpu-float64", "error-cpu-float32",
         "error-cpu-float16", "error-cpu-bfloat16", "bandwidth-cuda-bfloat16-warm-softmax-fwd-ws1",
         "peak-cuda-bfloat16-warm", "small/bandwidth-cpu-float64-cold", "headline-softmax-fwd",
         "headline-cross-entropy-full")


@pytest.fixture(scope="module")
def figures():
    """Every figure of the published report, of the newer-fields fixture and of the small fixture;
    those named in ``DRAWN`` are drawn once, here."""
    plt = plots._pyplot()
    with plt.rc_context({"figure.max_open_warning": 0}):  # all of them stay open for the tests
        found = {**_figures(PUBLISHED), **_figures([OPS]), **{f"small/{k}": v for k, v in _figures([SMALL]).items()}}
    for name in DRAWN:
        found[name].fig.canvas.draw()
    yield found
    for d in found.values():
        plt.close(d.fig)
        if d.narrow is not None:
            plt.close(d.narrow)


def _data_lines(ax):
    return [line for line in ax.get_lines() if line.get_transform() == ax.transData]


def lines_outside(fig) -> list[str]:
    """Labels of lines with a point outside the view of their axes."""
    outside = []
    for ax in fig.axes:
        (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
        for line in _data_lines(ax):
            if any(not (x0 <= x <= x1 and y0 <= y <= y1) for x, y in line.get_xydata()):
                outside.append(line.get_label())
    return outside


def test_no_two_tick_labels_overlap(figures):
    for name in DRAWN:
        fig = figures[name].fig
        assert len(plots.drawn_tick_labels(fig, draw=False)) > 5, name
        assert plots.overlapping_labels(fig, draw=False) == [], name


def test_the_overlap_check_catches_the_old_tick_placement():
    """Negative control: the old bandwidth panels (log2 axis, ticks at the vocabularies, 3 inch panels)."""
    plt = plots._pyplot()
    with plt.rc_context({"figure.max_open_warning": 0}):  # the module's figures are still open
        fig, axes = plt.subplots(1, 3, figsize=(11.2, 4.2), sharey=True, squeeze=False)
    vocabs = [1024, 32000, 50257, 128256, 151936, 256000]
    for ax in axes[0]:
        ax.plot(vocabs, range(len(vocabs)))
        ax.set_xscale("log", base=2)
        ax.set_xticks(vocabs, [f"{v:g}" for v in vocabs])
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    fig.tight_layout()
    try:
        assert ("128256", "151936") in plots.overlapping_labels(fig)
    finally:
        plt.close(fig)


def test_every_line_lies_inside_its_axes_the_copy_ceiling_included(figures):
    for name, d in figures.items():
        assert lines_outside(d.fig) == [], name
    warm = figures["bandwidth-cpu-float32-warm"].fig
    assert any(line.get_label() == "fastest copy (ceiling)" for line in _data_lines(warm.axes[1]))
    # Negative control: the old shared limit cut the 8-row panel's copy line at its top.
    top = warm.axes[1]
    limits = top.get_ylim()
    top.set_ylim(limits[0], 160)
    assert lines_outside(warm) == ["fastest copy (ceiling)"]
    top.set_ylim(*limits)


def test_the_backends_differ_in_marker_and_line_style_and_are_drawn_hollow(figures):
    styles = plots.backend_styles([{"backend": f"b{i}"} for i in range(8)])
    assert len({s["marker"] for s in styles.values()}) == 8
    assert len({str(s["linestyle"]) for s in styles.values()}) == 8
    error = figures["error-cpu-float32"].fig.axes[0]
    drawn = {line.get_label(): line for line in _data_lines(error)
             if not line.get_label().startswith("_") and line.get_label() != "tolerance"}
    assert len(drawn) == 7 and len({(l.get_marker(), str(l.get_linestyle())) for l in drawn.values()}) == 7
    assert all(line.get_markerfacecolor() == "none" for line in drawn.values())


def _marks(ax, marker):
    """Points drawn with ``marker`` at the bottom of the axes (x in data, y in axes coordinates)."""
    return [line for line in ax.get_lines() if line.get_marker() == marker and line.get_transform() != ax.transData]


def test_failed_and_missing_points_are_marked_at_the_bottom_and_named(figures):
    error = figures["error-cpu-float32"]
    crosses = _marks(error.fig.axes[0], "x")
    naive = plots.backend_styles(merge(load_runs(PUBLISHED), warn=lambda m: None))["naive"]["color"]
    assert len(crosses) == 2 and all(line.get_color() == naive for line in crosses)
    assert "naive at 30 and 100" in error.caption
    cold = figures["small/bandwidth-cpu-float64-cold"]
    # lse failed at 64×1024, online skipped at 4×262144: marked in both rows of panels.
    assert sum(len(_marks(ax, "x")) for ax in cold.fig.axes) == 4
    assert "lse 64×1024 (failed: raised)" in cold.caption and "online 4×262144 (skipped)" in cold.caption


def test_a_suspect_timing_gets_a_red_ring_and_is_named(figures):
    d = figures["bandwidth-cuda-bfloat16-warm-softmax-fwd-ws1"]
    rings = [line for line in d.fig.axes[0].get_lines() if line.get_markeredgecolor() == "red"]
    assert [tuple(line.get_xydata()[0]) for line in rings] == [(32000.0, 2240.0)]
    assert "suspect timing" in d.caption and "cupy-online 8×32000" in d.caption


def test_legends_sit_outside_the_data(figures):
    for name in DRAWN:
        fig = figures[name].fig
        renderer = fig.canvas.get_renderer()
        assert fig.legends, name
        for legend in fig.legends:
            box = legend.get_window_extent(renderer)
            assert not any(box.overlaps(ax.get_window_extent(renderer)) for ax in fig.axes), name


def test_peak_memory_is_plotted_for_cross_entropy_full_passes_only(figures):
    peak = [name for name in figures if name.startswith(("peak", "small/peak"))]
    assert peak == ["peak-cuda-bfloat16-warm"]
    ax = figures["peak-cuda-bfloat16-warm"].fig.axes[0]
    drawn = {line.get_label(): line.get_ydata() for line in _data_lines(ax) if not line.get_label().startswith("_")}
    assert set(drawn) == {"torch-fused", "fused-ce"}
    assert list(drawn["fused-ce"]) == pytest.approx([(8 * 32000 * 2 + 65536) / 2**20, (8 * 128256 * 2 + 65536) / 2**20])
    assert len(_marks(ax, "x")) == 1, "fused-ce failed at 256000"


def test_a_panel_of_one_size_draws_its_copy_ceiling():
    """A line needs two sizes: the 64-row panel of the two-pass study (one size, 256000) shows its
    ceiling as a short bar; without the copy figure there is no bar (the negative control)."""
    from matplotlib.collections import LineCollection

    records = merge(load_runs([ROOT / "results" / "two-pass-study-threads1-a.json"]), warn=lambda message: None)

    def bars(records) -> int:
        with plots._pyplot().rc_context({"figure.max_open_warning": 0}):  # the module's fixture holds 20 open
            (drawn,) = plots.bandwidth_figures(records, plots.backend_styles(records))
        try:
            one_size = drawn.fig.axes[2]  # top row, third panel: 64 rows
            return sum(isinstance(c, LineCollection) for c in one_size.collections)
        finally:
            plots._pyplot().close(drawn.fig)

    assert bars(records) == 1
    assert bars([{**r, "device_copy_gbps": None} for r in records]) == 0


# ---------------------------------------------------------------- issue 24: log sizes, shared shares, ceilings


def categorical_axes(fig, vocabularies) -> list[int]:
    """Indices of the axes whose x is not log of the vocabulary: a linear axis, or lines drawn at
    positions (0, 1, 2 ...) rather than at the measured vocabularies."""
    bad = []
    for i, ax in enumerate(fig.axes):
        xs = {x for line in _data_lines(ax) if not line.get_label().startswith("fastest copy")
              for x in line.get_xdata()}
        if ax.get_xscale() != "log" or not xs <= set(vocabularies):
            bad.append(i)
    return bad


def test_the_size_axis_is_log_of_the_vocabulary(figures):
    vocabs = {r["vocab"] for path in (PUBLISHED, [OPS]) for r in merge(load_runs(path), warn=lambda m: None)
              if r["kind"] == "timing"}
    for name in ("bandwidth-cpu-float32-warm", "bandwidth-cuda-bfloat16-warm-softmax-fwd-ws1",
                 "peak-cuda-bfloat16-warm", "headline-softmax-fwd", "headline-cross-entropy-full"):
        assert categorical_axes(figures[name].fig, vocabs) == [], name


def test_the_log_axis_check_catches_evenly_spaced_categories():
    """Negative control: the old placement (positions 0..n-1, labelled with the vocabularies)."""
    plt = plots._pyplot()
    with plt.rc_context({"figure.max_open_warning": 0}):
        fig, ax = plt.subplots()
    vocabs = [1024, 32000, 256000]
    ax.plot(range(3), [1, 2, 3], label="a")
    ax.set_xticks(range(3), [str(v) for v in vocabs])
    try:
        assert categorical_axes(fig, vocabs) == [0]
    finally:
        plt.close(fig)


def share_faults(fig) -> list[str]:
    """What is wrong with a figure's share-of-copy panels (the linear ones; GB/s and memory are log):
    ranges that differ, a top below 100%, no line at 100%."""
    shares = [ax for ax in fig.axes if ax.get_visible() and ax.get_yscale() == "linear"]
    faults = []
    if len({ax.get_ylim() for ax in shares}) > 1:
        faults.append("y-ranges differ")
    for ax in shares:
        if ax.get_ylim()[1] < 100:
            faults.append("top below 100%")
        if not any(list(line.get_ydata()) == [100, 100] for line in ax.get_lines()):
            faults.append("no ceiling line")
    return faults


def test_share_panels_share_one_range_that_shows_the_ceiling(figures):
    for name in ("bandwidth-cpu-float32-warm", "bandwidth-cpu-float32-cold", "headline-softmax-fwd",
                 "headline-cross-entropy-full", "small/bandwidth-cpu-float64-cold"):
        fig = figures[name].fig
        shares = [ax for ax in fig.axes if "%" in ax.get_ylabel()]
        assert shares, name
        assert share_faults(fig) == [], name
    # Every panel of a row, not only the first (which alone carries the y label), is a share panel.
    warm = figures["bandwidth-cpu-float32-warm"].fig
    assert len({warm.axes[i].get_ylim() for i in range(len(warm.axes) // 2, len(warm.axes))}) == 1


def test_the_share_check_catches_a_panel_scaled_to_its_backends(figures):
    """Negative control: one panel scaled to its data (the old 25-60% tops), its 100% line gone."""
    fig = figures["bandwidth-cpu-float32-warm"].fig
    ax = fig.axes[-1]
    limits, ceiling = ax.get_ylim(), [line for line in ax.get_lines() if list(line.get_ydata()) == [100, 100]]
    ax.set_ylim(0, 40)
    for line in ceiling:
        line.set_visible(False)
        line.set_ydata([30, 30])
    try:
        assert set(share_faults(fig)) == {"y-ranges differ", "top below 100%", "no ceiling line"}
    finally:
        ax.set_ylim(*limits)
        for line in ceiling:
            line.set_ydata([100, 100])
            line.set_visible(True)


def test_one_headline_figure_per_op_and_pass_with_a_line_per_backend(figures):
    from softmax_bench.report.tables import speed_records

    records = merge(load_runs([OPS]), warn=lambda m: None)
    timed = {(r.get("op"), r.get("pass")) for r in speed_records(records)
             if r.get("device_copy_fraction") is not None and r.get("median_s") is not None and not r.get("suspect")}
    drawn = _figures([OPS])
    try:
        headline = sorted(name for name in drawn if name.startswith("headline-"))
        assert headline == sorted(plots._slug(["headline", op, p]) for op, p in timed)
        for name in headline:
            assert drawn[name].section == "headline"
            for ax in drawn[name].fig.axes:
                labels = [line.get_label() for line in _data_lines(ax) if not line.get_label().startswith("_")]
                assert len(labels) == len(set(labels)), "one line per backend"
    finally:
        for d in drawn.values():
            plots._pyplot().close(d.fig)


def test_error_plots_draw_the_checks_tolerance(figures):
    from softmax_bench.measure.cases import find
    from softmax_bench.measure.figures import softmax_tolerance_ulp

    ax = figures["error-cpu-float64"].fig.axes[0]
    (line,) = [line for line in _data_lines(ax) if line.get_label() == "tolerance"]
    scales = list(line.get_xdata())
    assert scales == [1, 3, 4, 10, 30, 100] or scales == sorted(scales)
    assert list(line.get_ydata()) == [softmax_tolerance_ulp(find(f"randn_scale_{s:g}"), "float64") for s in scales]
    # float64, 1000 entries a row summed in float64: about 2 × (2 + 1000) ULP at the rows' largest entries.
    assert all(1000 < y < 1500 for y in line.get_ydata())
    assert "tolerance" in figures["error-cpu-float64"].caption
    assert lines_outside(figures["error-cpu-float64"].fig) == [], "the tolerance line is inside the axes"


def test_the_tolerance_is_tight_where_half_precision_sums_in_float32():
    """bfloat16 inputs summed in float32: the sum term vanishes and the tolerance is a few ULP (about 2 × 2 × u),
    so the JAX 73 ULP on randn_scale_10 sits far above it; the control: float32 at the same case is ~1000."""
    from softmax_bench.measure.cases import find
    from softmax_bench.measure.figures import softmax_tolerance_ulp

    case = find("randn_scale_10")
    assert 1 < softmax_tolerance_ulp(case, "bfloat16") < 5
    assert softmax_tolerance_ulp(case, "float32") > 1000


def test_every_figure_records_its_width_and_smallest_text(tmp_path):
    records = merge(load_runs([OPS]), warn=lambda m: None)
    written = plots.write_plots(records, tmp_path)
    assert written
    for fig in written:
        svg = fig.svg.read_text()
        assert "<text" in svg, "text stays text, its size in the file"
        assert fig.smallest_text_pt >= 8 and f'viewBox="0 0 {fig.width_pt:g} ' in svg
