"""Tests of fslib.paper: the reported items, the results and claims tables and their verdict rules."""

from __future__ import annotations

import dataclasses

import pytest

from fslib import paper
from fslib.errors import InvalidInputError

SHORTCUTS = "06_frequency_shortcuts"
DFM = "05_dominant_frequency_maps"


def _rule(item, chapter, metric, rule="context", tolerance=paper.RATE_TOLERANCE):
    return (paper.Comparison(item, chapter, metric, rule=rule, tolerance=tolerance),)


def test_provenance_tags_valid():
    for item in paper.REPORTED.values():
        assert item.provenance in paper.PROVENANCE_TAGS, item.key


def test_claim_provenance_valid():
    for claim in paper.CLAIMS:
        assert claim.provenance in paper.PROVENANCE_TAGS, claim.number


def test_every_item_has_source():
    for item in paper.REPORTED.values():
        assert item.source.strip(), item.key


def test_invalid_provenance_rejected():
    with pytest.raises(InvalidInputError, match="provenance 'guess'"):
        paper.ReportedItem("x", "x", 1, "", "guess", "nowhere")


def test_items_frozen():
    item = paper.REPORTED["tpr_zebra"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        item.value = 0.5


def test_reported_numbers():
    expected = {"tpr_zebra": 0.96, "fpr_zebra": 0.022, "tpr_container_ship": 0.94, "fpr_container_ship": 0.013,
                "tpr_siamese_cat_sin": 0.88, "fpr_siamese_cat_sin": 0.244, "tpr_container_ship_vgg16": 0.70,
                "fpr_container_ship_vgg16": 0.42, "tpr_class_average": 0.286, "fpr_class_average": 0.041,
                "search_cost_cifar10": 7.5, "search_cost_imagenet1k": 8500, "dfm_top_percent": 5.0}
    for key, value in expected.items():
        assert paper.REPORTED[key].value == value, key


def test_rerun_tprs_in_class_order():
    values = [paper.REPORTED[f"tpr_{paper._slug(name)}_rerun"].value for name in paper.IMAGENET10_CLASSES]
    assert values == [0.08, 0.0, 0.40, 0.80, 0.02, 0.02, 0.14, 0.80, 0.54, 0.06]


def test_imagenet10_order():
    assert paper.IMAGENET10_CLASSES[7] == "zebra"
    assert paper.IMAGENET10_CLASSES[8] == "container ship"
    assert len(paper.IMAGENET10_CLASSES) == 10


def test_reported_table_filter():
    table = paper.reported_table("follow-up")
    assert len(table) > 0
    assert set(table["provenance"]) == {"follow-up"}


def test_reported_table_bad_tag():
    with pytest.raises(InvalidInputError, match="'papers'"):
        paper.reported_table("papers")


def test_results_table_columns():
    table = paper.results_table({})
    expected = ["quantity", "data set", "model", "reported", "unit", "provenance", "source", "measured",
                "measured in", "verdict", "note"]
    assert list(table.columns) == expected


def test_results_table_one_row_per_comparison():
    assert len(paper.results_table({})) == len(paper.COMPARISONS)


def test_results_table_provenance_valid():
    table = paper.results_table({})
    assert set(table["provenance"]) <= set(paper.PROVENANCE_TAGS)


def test_empty_metrics_not_measured():
    table = paper.results_table({})
    assert set(table["verdict"]) == {paper.NOT_MEASURED}
    assert set(table["measured"]) == {paper.NOT_MEASURED}


def test_rate_within_tolerance_agrees():
    metrics = {SHORTCUTS: {"dataset": "imagenet10", "model": "resnet18", "tpr": {"zebra": 0.90}}}
    table = paper.results_table(metrics, _rule("tpr_zebra", SHORTCUTS, "tpr/zebra"))
    assert table.iloc[0]["verdict"] == paper.AGREES


def test_rate_outside_tolerance_differs():
    metrics = {SHORTCUTS: {"dataset": "ImageNet-10", "model": "ResNet18", "tpr": {"zebra": 0.80}}}
    table = paper.results_table(metrics, _rule("tpr_zebra", SHORTCUTS, "tpr/zebra"))
    assert table.iloc[0]["verdict"] == paper.DIFFERS


def test_tolerance_edge_agrees():
    metrics = {SHORTCUTS: {"dataset": "ImageNet-10", "model": "ResNet18", "tpr_mean": 0.5}}
    table = paper.results_table(metrics, _rule("tpr_class_average", SHORTCUTS, "tpr_mean", tolerance=0.25))
    assert table.iloc[0]["verdict"] == paper.AGREES


def test_different_data_not_comparable():
    metrics = {SHORTCUTS: {"dataset": "photos", "model": "resnet18", "tpr_mean": 0.286}}
    table = paper.results_table(metrics, _rule("tpr_class_average", SHORTCUTS, "tpr_mean"))
    assert table.iloc[0]["verdict"] == paper.DIFFERENT_DATA
    assert table.iloc[0]["measured"] == "0.286"


def test_missing_dataset_not_comparable():
    metrics = {SHORTCUTS: {"tpr_mean": 0.3}}
    table = paper.results_table(metrics, _rule("tpr_class_average", SHORTCUTS, "tpr_mean"))
    assert table.iloc[0]["verdict"] == paper.DATA_NOT_RECORDED


def test_different_model_not_comparable():
    metrics = {SHORTCUTS: {"dataset": "imagenet10", "model": "resnet50", "tpr": {"container_ship": 0.7}}}
    table = paper.results_table(metrics, _rule("tpr_container_ship_vgg16", SHORTCUTS, "tpr/container ship"))
    assert table.iloc[0]["verdict"] == paper.DIFFERENT_MODEL


def test_missing_key_not_measured():
    metrics = {SHORTCUTS: {"dataset": "imagenet10", "model": "resnet18"}}
    table = paper.results_table(metrics, _rule("tpr_zebra", SHORTCUTS, "tpr/zebra"))
    assert table.iloc[0]["verdict"] == paper.NOT_MEASURED
    assert "was not written" in table.iloc[0]["note"]


def test_equal_rule():
    table = paper.results_table({DFM: {"top_percent": 5}}, _rule("dfm_top_percent", DFM, "top_percent", "equal"))
    assert table.iloc[0]["verdict"] == paper.AGREES
    table = paper.results_table({DFM: {"top_percent": 10}}, _rule("dfm_top_percent", DFM, "top_percent", "equal"))
    assert table.iloc[0]["verdict"] == paper.DIFFERS


def test_hardware_rule_scales_seconds():
    comparison = (paper.Comparison("search_cost_cifar10", DFM, "seconds", rule="hardware", scale=1 / 3600),)
    table = paper.results_table({DFM: {"seconds": 1800.0}}, comparison)
    assert table.iloc[0]["verdict"] == paper.DIFFERENT_HARDWARE
    assert table.iloc[0]["measured"] == "0.5"


def test_non_number_not_measured():
    metrics = {SHORTCUTS: {"dataset": "imagenet10", "model": "resnet18", "tpr_mean": "n/a"}}
    table = paper.results_table(metrics, _rule("tpr_class_average", SHORTCUTS, "tpr_mean"))
    assert table.iloc[0]["verdict"] == paper.NOT_MEASURED


def test_unknown_item_rejected():
    with pytest.raises(InvalidInputError, match="'tpr_unicorn'"):
        paper.results_table({}, _rule("tpr_unicorn", SHORTCUTS, "x"))


def test_bad_metrics_type():
    with pytest.raises(TypeError, match="chapter_metrics"):
        paper.results_table([1, 2])


def test_metric_value_class_list():
    metrics = {"classes": ["airliner", "Siamese cat"], "tpr": [0.1, 0.7]}
    assert paper.metric_value(metrics, "tpr/siamese_cat") == 0.7
    assert paper.metric_value(metrics, "tpr/1") == 0.7
    assert paper.metric_value(metrics, "tpr/zebra") is None


def test_metric_value_nested_slug():
    metrics = {"per_class": {"container_ship": {"tpr": 0.4}}}
    assert paper.metric_value(metrics, "per_class/container ship/tpr") == 0.4
    assert paper.metric_value(metrics, "per_class/ox/tpr") is None


def _claim(*evidence):
    items = tuple(paper.Evidence(chapter, metric, description, expected)
                  for chapter, metric, expected, description in evidence)
    return (paper.Claim(9, "test claim", "paper", "test", items),)


def test_claim_agrees():
    metrics = {"a": {"x": True, "y": 0}}
    table = paper.claims_table(metrics, _claim(("a", "x", True, "x"), ("a", "y", False, "y")))
    assert table.iloc[0]["verdict"] == paper.AGREES


def test_claim_differs():
    table = paper.claims_table({"a": {"x": False}}, _claim(("a", "x", True, "x")))
    assert table.iloc[0]["verdict"] == paper.DIFFERS


def test_claim_partly():
    metrics = {"a": {"x": True, "y": True}}
    table = paper.claims_table(metrics, _claim(("a", "x", True, "x"), ("a", "y", False, "y")))
    assert table.iloc[0]["verdict"] == paper.PARTLY


def test_claim_missing_evidence_ignored():
    table = paper.claims_table({"a": {"x": True}}, _claim(("a", "x", True, "x"), ("b", "z", True, "z")))
    assert table.iloc[0]["verdict"] == paper.AGREES
    assert "not measured" in table.iloc[0]["this book measured"]


def test_claims_table_four_claims():
    table = paper.claims_table({})
    assert list(table["claim"]) == [1, 2, 3, 4]
    assert set(table["verdict"]) == {paper.NOT_MEASURED}


def test_search_cost_loop_inputs():
    keys = paper.SEARCH_COST_KEYS
    metrics = {keys["image_size"]: 32, keys["patch_size"]: 2, keys["images_per_class"]: 10,
               keys["classes"]: ["a", "b", "c"], keys["exact_removals"]: 1000}
    table = paper.search_cost_table(metrics).set_index("search")
    assert table.loc["paper's loop", "removals"] == 3 * 16 * 16
    assert table.loc["paper's loop", "model inputs"] == 3 * 16 * 16 * 10
    assert table.loc["this book, exact", "model inputs"] == 10_000
    assert table.loc["this book, exact", "seconds"] == paper.NOT_MEASURED


def test_search_cost_fast_inputs_from_compute():
    keys = paper.SEARCH_COST_KEYS
    metrics = {keys["image_size"]: 32, keys["patch_size"]: 1, keys["images_per_class"]: 10,
               keys["classes"]: ["a", "b"], keys["fast_removals"]: 40, keys["fast_inputs"]: 1234}
    table = paper.search_cost_table(metrics).set_index("search")
    assert table.loc["this book, fast", "model inputs"] == 1234
    assert table.loc["this book, fast", "removals"] == 40


def test_search_cost_follow_up_rate():
    table = paper.search_cost_table({})
    follow_up = table[table["provenance"] == "follow-up"].iloc[0]
    assert follow_up["seconds"] == 7.5 * 3600
    assert follow_up["inputs per second"] == pytest.approx(32 * 32 * 10_000 / 27_000, rel=1e-3)


def test_search_cost_missing_metrics():
    table = paper.search_cost_table({})
    assert table.iloc[0]["seconds"] == paper.NOT_MEASURED


def test_bench_tables(tmp_path):
    record = tmp_path / "README.md"
    record.write_text("# Benchmarks\n\n## Filtering\n\n### Recorded\n\n`run a`:\n\n| size | ratio |\n|---|---:|\n"
                      "| 32 | 1.2 |\n| 224 | 0.9 |\n\n## Search\n\n| step | speed-up |\n| --- | --- |\n| fast | 4.0 |\n")
    tables = paper.read_bench_tables(record)
    assert [title for title, _ in tables] == ["Filtering: `run a`:", "Search"]
    assert tables[0][1].shape == (2, 2)
    assert tables[1][1].iloc[0]["speed-up"] == "4.0"


def test_bench_tables_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="README.md"):
        paper.read_bench_tables(tmp_path / "README.md")


def test_tolerance_override():
    metrics = {SHORTCUTS: {"dataset": "ImageNet-10", "model": "ResNet18", "tpr": {"zebra": 0.80}}}
    comparison = _rule("tpr_zebra", SHORTCUTS, "tpr/zebra")
    assert paper.results_table(metrics, comparison, tolerance=0.2).iloc[0]["verdict"] == paper.AGREES


def test_tolerance_negative_rejected():
    with pytest.raises(InvalidInputError, match="tolerance -1"):
        paper.results_table({}, tolerance=-1)


def test_overview_rows():
    table = paper.metrics_overview({"a": {"x": 1, "y": [1, 2]}, "b": {}})
    assert len(table) == 3
    assert table.iloc[2]["value"] == "no metrics.json"


def test_read_chapter_metrics(tmp_path):
    (tmp_path / "metrics.json").write_text('{"top_percent": 5}')
    metrics = paper.read_chapter_metrics({DFM: str(tmp_path)}, (DFM, SHORTCUTS))
    assert metrics[DFM] == {"top_percent": 5}
    assert metrics[SHORTCUTS] == {}


def test_find_bench_record_none(tmp_path):
    assert paper.find_bench_record(start=tmp_path) is None


def test_find_bench_record_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="bench_record"):
        paper.find_bench_record(tmp_path / "nothing.md")


def test_other_data_missing_class():
    metrics = {SHORTCUTS: {"dataset": "photos", "classes": ["brick"], "tpr": [0.9]}}
    table = paper.results_table(metrics, _rule("tpr_zebra", SHORTCUTS, "tpr/zebra"))
    assert table.iloc[0]["verdict"] == paper.DIFFERENT_DATA
    assert table.iloc[0]["measured"] == paper.NOT_MEASURED


def test_verdict_summary_counts():
    metrics = {DFM: {"top_percent": 5}, SHORTCUTS: {"dataset": "photos", "mean_tpr": 0.3}}
    summary = paper.verdict_summary(paper.results_table(metrics), paper.claims_table(metrics))
    assert summary["comparisons"] == len(paper.COMPARISONS)
    assert summary["comparisons_agree"] == 1
    assert summary["comparisons_differ"] == 0
    unmeasured = sum(1 for comparison in paper.COMPARISONS if not comparison.chapter)
    assert summary["comparisons_not_measured"] == 1 + unmeasured
    assert summary["comparisons_not_comparable"] == len(paper.COMPARISONS) - 2 - unmeasured
    assert summary["claim_4_verdict"] == paper.NOT_MEASURED


def test_claim_three_by_kind():
    per_class = {"brick": {"kind": "texture", "is_shortcut": True}, "cat": {"kind": "object", "is_shortcut": False}}
    table = paper.claims_table({SHORTCUTS: {"shortcut_count": 1, "per_class": per_class}})
    row = table[table["claim"] == 3].iloc[0]
    assert row["verdict"] == paper.PARTLY
    assert "an object photograph has a shortcut: False" in row["this book measured"]


def test_shortcut_rates_by_class_name():
    metrics = {SHORTCUTS: {"dataset": "imagenet10", "model": "resnet18",
                           "per_class": {"zebra": {"tpr": 0.9, "fpr": 0.03}}}}
    table = paper.results_table(metrics)
    zebra = table[table["measured in"] == f"{SHORTCUTS}: per_class/zebra/tpr"]
    assert list(zebra["verdict"]) == [paper.AGREES, paper.AGREES]


def test_context_from_dfm_chapter(tmp_path):
    import torch

    from fslib.models import build_model, save_checkpoint

    dfm_dir, shortcut_dir = tmp_path / "dfm", tmp_path / "shortcuts"
    dfm_dir.mkdir()
    shortcut_dir.mkdir()
    torch.manual_seed(0)
    model = build_model("resnet18", 3, 32, width=8)
    save_checkpoint(dfm_dir / "model.pt", model, {"classes": ["a", "b", "c"]})
    (dfm_dir / "data.json").write_text('{"source": "photos", "size": 32}')
    (dfm_dir / "metrics.json").write_text('{"top_percent": 5}')
    (shortcut_dir / "metrics.json").write_text('{"mean_tpr": 0.5, "model": "vgg16"}')
    metrics = paper.read_chapter_metrics({DFM: str(dfm_dir), SHORTCUTS: str(shortcut_dir)}, (DFM, SHORTCUTS))
    assert metrics[SHORTCUTS]["dataset"] == "photos"
    assert metrics[SHORTCUTS]["model"] == "vgg16"
    assert metrics[DFM]["model"] == "resnet18 (width 8)"


def test_unmeasured_item_note():
    table = paper.results_table({})
    sin = table[table["quantity"].str.contains("stylised")]
    assert len(sin) == 2
    assert set(sin["verdict"]) == {paper.NOT_MEASURED}
    assert sin.iloc[0]["note"].startswith("no chapter")


def test_claim_one_needs_yes():
    metrics = {"03_learning_dynamics": {"syn1_agreement": "yes", "syn4_agreement": "no"}}
    row = paper.claims_table(metrics).iloc[0]
    assert row["verdict"] == paper.PARTLY
    assert "syn2" in row["this book measured"]


def test_evidence_string_expected():
    evidence = paper.Evidence("a", "x", "x", expected="yes")
    assert evidence.supports("yes")
    assert not evidence.supports("tied")


def test_claim_inconclusive_not_counted():
    metrics = {"03_learning_dynamics": {"syn1_agreement": "none learned", "syn4_agreement": "tied"}}
    row = paper.claims_table(metrics).iloc[0]
    assert row["verdict"] == paper.NOT_MEASURED
    assert "tied, inconclusive" in row["this book measured"]


def test_class_values_per_class():
    names, values = paper._class_values({"per_class": {"brick": {"tpr": 0.5}, "cat": {"tpr": 1.0}}})
    assert names == ["brick", "cat"]
    assert values == [0.5, 1.0]
