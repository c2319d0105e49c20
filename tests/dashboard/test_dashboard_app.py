"""Every page of the Streamlit app on the sample runs, with streamlit.testing.v1.AppTest."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from fairderm.markdown import escape_markdown

APP = Path(__file__).resolve().parents[2] / "fairderm" / "dashboard" / "app.py"

PAGES = ["Overview", "Disparities", "Intersections", "Calibration", "Skin tone", "Cases",
         "Mitigation", "Compare runs", "Model card"]


@pytest.fixture
def app(runs_dir: Path, run_ids: list[str], monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("FAIRDERM_RUNS_DIR", str(runs_dir))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params["run"] = run_ids[0]
    return at.run()


def _open(at: AppTest, page: str) -> AppTest:
    at.sidebar.radio(key="page").set_value(page).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.header[0].value == page
    return at


def _charts(at: AppTest) -> int:
    return len(at.get("plotly_chart"))


def test_every_page_opens_without_exception(app: AppTest) -> None:
    for page in PAGES:
        _open(app, page)


def test_overview_shows_verdict_rules_sizes_and_warnings(app: AppTest) -> None:
    at = _open(app, "Overview")
    assert any("Gate verdict" in m.value for m in at.markdown)
    assert len(at.dataframe) >= 2  # rules and group sizes
    assert at.metric[0].value == "300"
    warnings = " ".join(w.value for w in at.warning)
    assert "abstained" in warnings and "unparseable" in warnings


def test_disparities_switches_metric_attribute_and_adjustment(app: AppTest) -> None:
    at = _open(app, "Disparities")
    assert _charts(at) == 2  # per-group intervals and the forest plot
    at.selectbox(key="disp_metric").set_value("sensitivity").run()
    at.selectbox(key="disp_attribute").set_value("sex").run()
    assert not at.exception
    at.radio(key="disp_mode").set_value("case-mix adjusted").run()
    assert not at.exception
    assert _charts(at) == 2  # per-group intervals and the adjusted odds ratios


def test_intersections_heatmap_greys_insufficient_cells(app: AppTest) -> None:
    at = _open(app, "Intersections")
    assert _charts(at) == 1
    flags = at.dataframe[0].value["flag"]
    assert set(flags) <= {"ok", "insufficient", "undefined", "empty", "missing_value"}
    assert "ok" in set(flags)


def test_calibration_shows_curves_and_ece(app: AppTest) -> None:
    assert _charts(_open(app, "Calibration")) == 2


def test_skin_tone_shows_distribution_agreement_abstentions_and_images(app: AppTest) -> None:
    at = _open(app, "Skin tone")
    assert _charts(at) == 2
    assert {m.label for m in at.metric} >= {"Abstained", "Exact agreement (Fitzpatrick)"}
    assert len(at.image) > 0


def test_cases_gallery_filters_by_group_and_diagnosis(app: AppTest) -> None:
    at = _open(app, "Cases")
    before = len(at.dataframe[0].value)
    assert before > 0 and len(at.image) > 0
    at.selectbox(key="cases_group").set_value("V-VI").run()
    at.selectbox(key="cases_diagnosis").set_value("melanoma").run()
    after = at.dataframe[0].value
    assert 0 < len(after) < before
    assert set(after["tone_group"]) == {"V-VI"}
    assert not after["label"].eq(after["pred"]).any()  # errors only by default


def test_mitigation_on_a_run_without_it_says_not_available(app: AppTest) -> None:
    at = _open(app, "Mitigation")
    assert any("not available in this run" in i.value for i in at.info)


def test_mitigation_shows_frontier_and_per_group_intervals(app: AppTest, run_ids: list[str]) -> None:
    app.sidebar.selectbox(key="run").set_value(run_ids[1]).run()
    at = _open(app, "Mitigation")
    assert _charts(at) == 2
    assert list(at.dataframe[0].value["method"]) == ["erm", "reweighting", "router"]
    levelling = at.dataframe[1].value  # #23: each method against ERM's worst and best group
    assert dict(zip(levelling["method"], levelling["levelled down"])) == {"reweighting": "yes", "router": "no"}
    assert [w.value for w in at.warning] == [escape_markdown(
        "threshold, class melanoma: ThresholdOptimizer failed: Degenerate labels for sensitive feature value (none); "
        "the ERM head's score is kept for this class")]


def test_compare_runs_shows_point_differences_then_paired_intervals(app: AppTest) -> None:
    at = _open(app, "Compare runs")
    assert _charts(at) == 1
    assert "difference" in at.dataframe[0].value.columns
    at.number_input(key="cmp_boot").set_value(100).run()
    at.button(key="cmp_paired").click().run()
    assert not at.exception and not at.warning
    assert _charts(at) == 2  # per-run intervals and the paired forest plot
    paired = at.dataframe[0].value
    assert {"difference", "ci_low", "ci_high"} <= set(paired.columns)
    ok = paired[paired["flag"] == "ok"]
    assert len(ok) >= 3
    assert (ok["difference"] - (ok["estimate_b"] - ok["estimate_a"])).abs().max() < 1e-3
    assert (ok["ci_low"] <= ok["difference"] + 1e-9).all() and (ok["difference"] <= ok["ci_high"] + 1e-9).all()


def test_model_card_renders_and_offers_downloads(app: AppTest) -> None:
    at = _open(app, "Model card")
    assert any("Model card: demo-erm" in m.value for m in at.markdown)
    assert len(at.get("download_button")) == 6


@pytest.mark.parametrize("param", ["run", "compare"])
@pytest.mark.parametrize("attempt", ["../../etc/passwd", "/etc/passwd", "cohort"])
def test_path_traversal_in_url_is_refused(runs_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                          param: str, attempt: str) -> None:
    monkeypatch.setenv("FAIRDERM_RUNS_DIR", str(runs_dir))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params[param] = attempt
    at.run()
    assert not at.exception
    assert at.error and at.error[0].value.startswith("Refused")
    assert not at.header  # no page drawn


def test_missing_runs_folder_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAIRDERM_RUNS_DIR", str(tmp_path / "nope"))
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert "does not exist" in at.error[0].value


def test_skin_tone_overlays_the_tone_packages_healthy_skin_mask(app: AppTest, monkeypatch) -> None:
    import numpy as np

    from fairderm import tone

    # Stand-in for the estimator's mask, on a half-size grid as a downscaling estimator would give.
    monkeypatch.setattr(tone, "healthy_skin_mask",
                        lambda rgb: np.ones((rgb.shape[0] // 2, rgb.shape[1] // 2), bool), raising=False)
    at = _open(app, "Skin tone")
    assert len(at.image) > 0
    assert not any("no healthy-skin mask" in c.value for c in at.caption)


def test_healthy_skin_is_outlined_and_keeps_its_own_colour(monkeypatch) -> None:
    import numpy as np
    from PIL import Image

    from fairderm import tone
    from fairderm.dashboard import image_views

    mask = np.zeros((60, 60), bool)
    mask[10:50, 10:50] = True
    monkeypatch.setattr(tone, "healthy_skin_mask", lambda rgb: mask)
    skin = (200, 150, 120)
    shown = np.asarray(image_views._healthy_skin_overlay(Image.new("RGB", (60, 60), skin)))
    assert (shown[30, 30] == skin).all()  # the skin being judged is not tinted
    assert (shown[10, 30] == image_views.HEALTHY_SKIN_OUTLINE).all()  # its edge is drawn
    assert (shown[5, 5] == skin).all()  # outside the mask nothing changes


def test_skin_tone_page_explains_the_outline_and_can_hide_it(app: AppTest) -> None:
    at = _open(app, "Skin tone")
    assert any("Outlined in bluish green" in c.value for c in at.caption)
    at.toggle(key="tone_outline").set_value(False).run()
    assert not any("Outlined in bluish green" in c.value for c in at.caption)


def test_runs_with_equal_estimates_are_drawn_at_the_same_estimate() -> None:
    import pandas as pd

    from fairderm.dashboard import charts

    frame = pd.DataFrame({"group": ["I-II", "I-II"], "run": ["A", "B"], "estimate": [0.8, 0.8],
                          "ci_low": [0.7, 0.7], "ci_high": [0.9, 0.9]})
    fig = charts.grouped_intervals(frame, series="run")
    assert [list(trace.x) for trace in fig.data] == [[0.8], [0.8]]
    # Plotly sets grouped scatter traces apart along their orientation's axis: it must be the group axis (y)
    assert fig.layout.scattermode == "group"
    assert all(trace.orientation == "h" for trace in fig.data)


def test_warning_about_a_large_group_with_few_positives_names_the_positives() -> None:
    import pandas as pd

    from fairderm.dashboard import views
    from fairderm.dashboard.run_data import RunData
    from fairderm.metrics import EvaluationResult

    groups = [
        {"attribute": "fitzpatrick_group", "group": "I-II", "metric": "accuracy", "n": 165, "n_pos": 4, "flag": "ok"},
        {"attribute": "fitzpatrick_group", "group": "I-II", "metric": "sensitivity", "n": 165, "n_pos": 4,
         "flag": "insufficient"},
        {"attribute": "fitzpatrick_group", "group": "V-VI", "metric": "accuracy", "n": 12, "n_pos": 6,
         "flag": "insufficient"},
    ]
    for row in groups:
        row.update(estimate=0.5, ci_low=0.4, ci_high=0.6)
    metrics = EvaluationResult.from_dict({"groups": groups, "config": {"min_group_size": 30, "min_positives": 10}})
    run = RunData(run_id="r", path=Path("."), metrics=metrics)
    (text,) = views._warnings(run, pd.DataFrame(groups))
    assert "2 group(s)" in text
    assert "I-II (sensitivity): n=165: 4 positives (fewer than 10)" in text
    assert "V-VI (accuracy): 12 cases (fewer than 30)" in text
    assert "below" not in text


def test_a_report_with_markdown_links_and_images_is_captioned_as_text(tmp_path, monkeypatch) -> None:
    """Captions are Markdown to Streamlit; a stranger's report must not become a link or a remote image."""
    import contextlib
    from types import SimpleNamespace

    import pandas as pd
    from PIL import Image

    from fairderm.dashboard import image_views

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    captions: list[str] = []
    fake_st = SimpleNamespace(columns=lambda n: [contextlib.nullcontext()] * n,
                              image=lambda image, caption, width: captions.append(caption),
                              caption=captions.append)
    monkeypatch.setattr(image_views, "st", fake_st)
    run = SimpleNamespace(image_path=lambda relative: tmp_path / relative)
    hostile = "melanoma ![pixel](http://203.0.113.9/t.png) [click](http://203.0.113.9/) <img src=x>"
    rows = pd.DataFrame({"image": ["a.png"], "image_id": ["[id](http://203.0.113.9/)"], "label": ["nevus"],
                         "pred": ["melanoma"], "confidence": [0.9], "text": [hostile]})
    image_views._image_row(run, None, rows, caption=image_views._case_caption)
    (caption,) = captions
    assert "<img" not in caption and "](" not in caption.replace("\\](", "")
    assert "\\[click\\]" in caption and "\\[id\\]" in caption
