"""benchmarks/readme_figures.py reads the demo's printout and rewrites exactly the marked README figures."""

from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import PROJECT_ROOT

_spec = importlib.util.spec_from_file_location("readme_figures", PROJECT_ROOT / "benchmarks" / "readme_figures.py")
readme_figures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(readme_figures)

PRINTOUT = """[demo] generating synthetic GLaS data in /tmp/x/glas_synthetic

[demo] done in 15 s
  synthetic data      : /tmp/x/glas_synthetic
  test IoU / Dice     : 0.675 / 0.792 (synthetic data, tiny net)
    holes   clean: IoU 0.675
    holes   0-10%: IoU 0.660
    holes  50-60%: IoU 0.389
"""
PRODUCED = {"measured_on"} | {
    f"{bundle}_demo_{key}" for bundle in ("glas", "kvasir") for key in ("seconds", "cpu_seconds", "iou", "dice", "iou_clean", "iou_50_60")
}


def test_demo_printout_gives_time_scores_and_robustness():
    assert readme_figures.parse_demo_output(PRINTOUT) == {
        "seconds": "15", "iou": "0.675", "dice": "0.792", "iou_clean": "0.675", "iou_50_60": "0.389"
    }


def test_printout_without_summary_is_refused():
    with pytest.raises(ValueError, match="summary"):
        readme_figures.parse_demo_output("[demo] training (8 epochs)\n")


def test_only_marked_values_are_rewritten():
    text = "IoU <!--fig:glas_demo_iou-->0.699<!--/fig--> in <!--fig:glas_demo_seconds-->45<!--/fig--> s; 0.699 stays"
    new = readme_figures.rewrite_figures(text, {"glas_demo_iou": "0.675", "glas_demo_seconds": "15"})
    assert new == "IoU <!--fig:glas_demo_iou-->0.675<!--/fig--> in <!--fig:glas_demo_seconds-->15<!--/fig--> s; 0.699 stays"


def test_marker_without_a_figure_names_file_and_marker():
    with pytest.raises(KeyError, match=r"README\.md.*glas_full_iou"):
        readme_figures.rewrite_figures("<!--fig:glas_full_iou-->?<!--/fig-->", {}, source="README.md")


def test_every_marker_in_the_docs_is_a_figure_the_script_produces():
    found = readme_figures.marker_names(readme_figures.FILES)
    assert found, "no README holds a marked figure"
    for path, names in found.items():
        assert set(names) <= PRODUCED, f"{path}: {sorted(set(names) - PRODUCED)}"
