"""Tests of fslib.dynamics: filtered evaluation, the tracking callback and its tables."""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import confusion_matrix, precision_score, recall_score  # noqa: E402
from torch import nn  # noqa: E402

from fslib.dynamics import (  # noqa: E402
    TABLE_COLUMNS,
    FilterEvaluation,
    LearningDynamics,
    describe_filter,
    evaluate_filtered,
    evaluations_to_frame,
    learned_first,
    load_dynamics,
    parse_band_sets,
    plot_dynamics,
    plot_relative_confusion,
    standard_filters,
    summarize_dynamics,
)
from fslib.errors import InvalidInputError  # noqa: E402
from fslib.fourier import band_pass_mask, band_stop_mask, default_band_edges  # noqa: E402

SIZE = 32
K = 4
# Column frequency of class k's cosine; radii 2, 6, 10, 14 fall into bands B1..B4 of [0, 4, 8, 12, inf].
FREQUENCIES = (2, 6, 10, 14)
CLASSES = ["low", "mid", "NA", "high"]


class CosineReader(nn.Module):
    """Predicts the class whose cosine frequency has the largest amplitude; records its train flag per call."""

    def __init__(self):
        super().__init__()
        self.register_buffer("columns", torch.tensor(FREQUENCIES))
        self.modes: list[bool] = []

    def forward(self, x):
        self.modes.append(self.training)
        amplitude = torch.fft.fft2(x).abs().mean(dim=1)  # (B, H, W)
        return amplitude[:, 0, self.columns]  # (B, K)


def make_images(n_per_class=12, seed=0):
    """Images of class k: cosine f_k at amplitude 1, the other three at random amplitudes in [0.1, 1.1]."""
    rng = np.random.default_rng(seed)
    cols = np.arange(SIZE)
    images, labels = [], []
    for label in range(K):
        for _ in range(n_per_class):
            amplitudes = rng.uniform(0.1, 1.1, size=K)
            amplitudes[label] = 1.0
            row = sum(a * np.cos(2 * np.pi * f * cols / SIZE) for a, f in zip(amplitudes, FREQUENCIES))
            image = 0.5 + 0.1 * np.broadcast_to(row, (3, SIZE, SIZE)) + rng.normal(0, 0.01, (3, SIZE, SIZE))
            images.append(image)
            labels.append(label)
    return torch.tensor(np.stack(images), dtype=torch.float32), torch.tensor(labels)


@pytest.fixture(scope="module")
def data():
    return make_images()


@pytest.fixture(scope="module")
def evaluations(data):
    images, labels = data
    return evaluate_filtered(CosineReader(), images, labels, standard_filters(SIZE), num_classes=K, batch_size=24)


def slow_predictions(model, images, mask):
    """Filter each image with numpy.fft one at a time and predict it alone."""
    predictions = []
    for image in images.numpy().astype(np.float64):
        if mask is not None:
            spectrum = np.fft.fft2(image, axes=(-2, -1))
            image = np.fft.ifft2(spectrum * np.fft.ifftshift(mask.numpy()), axes=(-2, -1)).real
        logits = model(torch.tensor(image[None], dtype=torch.float32))
        predictions.append(int(logits.argmax()))
    return np.array(predictions)


def fake_state(model, iteration, epoch, out_dir=None, normalization=None, steps_per_epoch=4):
    return SimpleNamespace(model=model, iteration=iteration, epoch=epoch, epoch_fraction=iteration / steps_per_epoch,
                           device=torch.device("cpu"), out_dir=out_dir, config=None,
                           normalization=normalization, history={})


def drive(tracker, model, iterations, *, start=0, steps_per_epoch=4, out_dir=None, normalization=None):
    """Call the hooks as a training loop would for optimizer steps start+1 .. iterations."""
    tracker.on_train_begin(fake_state(model, start, start // steps_per_epoch, out_dir, normalization))
    for iteration in range(start + 1, iterations + 1):
        epoch = iteration // steps_per_epoch
        state = fake_state(model, iteration, epoch, out_dir, normalization)
        tracker.on_iteration_end(state)
        if iteration % steps_per_epoch == 0:
            tracker.on_epoch_end(state)
    tracker.on_train_end(fake_state(model, iterations, iterations // steps_per_epoch, out_dir, normalization))


# --------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------


def test_standard_filters_names():
    filters = standard_filters(SIZE)
    expected = ["none", "pass B1", "pass B2", "pass B3", "pass B4", "stop B1+B2", "stop B1+B3", "stop B1+B4",
                "stop B2+B3", "stop B2+B4", "stop B3+B4"]
    assert list(filters) == expected


def test_standard_filters_masks():
    filters = standard_filters(SIZE, band_stop_sets=[(0, 1), (2,)])
    edges = default_band_edges(SIZE)
    assert filters["none"] is None
    assert torch.equal(filters["pass B3"], band_pass_mask(SIZE, edges, [2]))
    assert torch.equal(filters["stop B1+B2"], band_stop_mask(SIZE, edges, [0, 1]))
    assert torch.equal(filters["stop B3"], 1 - filters["pass B3"])


def test_standard_filters_custom_edges():
    filters = standard_filters((16, 24), edges=[0, 3, math.inf], band_stop_sets=())
    assert list(filters) == ["none", "pass B1", "pass B2"]
    assert tuple(filters["pass B1"].shape) == (16, 24)


def test_describe_filter():
    assert describe_filter("none") == ("none", "")
    assert describe_filter("pass B2") == ("band_pass", "B2")
    assert describe_filter("stop B1+B3") == ("band_stop", "B1+B3")
    assert describe_filter("my mask") == ("custom", "")


@pytest.mark.parametrize("text, expected", [
    ("B1+B2,B3+B4", [(0, 1), (2, 3)]),
    ("1+2 b3", [(0, 1), (2,)]),
    ("pairs", [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]),
    ("none", []),
])
def test_parse_band_sets(text, expected):
    assert parse_band_sets(text) == expected


@pytest.mark.parametrize("text", ["B5", "B0", "B1++B2", "low", "B1+B1"])
def test_parse_band_sets_invalid(text):
    with pytest.raises(InvalidInputError, match="Invalid band sets"):
        parse_band_sets(text)


# --------------------------------------------------------------------------
# evaluate_filtered against a slow loop and sklearn
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slow(data):
    """Predictions of the slow loop for every standard filter, keyed by filter name."""
    images, _ = data
    model = CosineReader()
    return {name: slow_predictions(model, images, mask) for name, mask in standard_filters(SIZE).items()}


def test_confusion_matches_slow_loop(data, evaluations, slow):
    _, labels = data
    for evaluation in evaluations:
        expected = confusion_matrix(labels.numpy(), slow[evaluation.filter], labels=range(K))
        np.testing.assert_array_equal(evaluation.confusion, expected, err_msg=evaluation.filter)


def test_relative_matches_loop(data, evaluations, slow):
    labels = data[1].numpy()
    for evaluation in evaluations:
        filtered, unfiltered = slow[evaluation.filter], slow["none"]
        expected = np.zeros((K, K))
        for t in range(K):
            n_t = int((labels == t).sum())
            for p in range(K):
                after = int(((labels == t) & (filtered == p)).sum())
                before = int(((labels == t) & (unfiltered == p)).sum())
                expected[t, p] = 100.0 * (after - before) / n_t
        np.testing.assert_allclose(evaluation.relative_percent, expected, err_msg=evaluation.filter)


def test_metrics_match_sklearn(data, evaluations, slow):
    labels = data[1].numpy()
    for evaluation in evaluations:
        predicted = slow[evaluation.filter]
        recall = recall_score(labels, predicted, labels=range(K), average=None, zero_division=np.nan)
        precision = precision_score(labels, predicted, labels=range(K), average=None, zero_division=np.nan)
        np.testing.assert_allclose(evaluation.recall, recall, err_msg=evaluation.filter)
        np.testing.assert_allclose(evaluation.precision, precision, err_msg=evaluation.filter)


def test_unfiltered_model_not_perfect(evaluations):
    # The random amplitudes reach above 1, so some images are misclassified; the checks above see off-diagonals.
    unfiltered = evaluations[0].confusion
    assert unfiltered.trace() < unfiltered.sum()


def test_removed_band_loses_class(evaluations):
    evaluation = {e.filter: e for e in evaluations}["stop B1+B2"]
    relative = evaluation.relative_percent
    assert relative[0, 0] < 0
    assert relative[1, 1] < 0
    assert evaluation.confusion[:, 0].sum() == 0
    assert evaluation.confusion[:, 1].sum() == 0


def test_band_pass_keeps_one_class(evaluations):
    evaluation = {e.filter: e for e in evaluations}["pass B3"]
    np.testing.assert_allclose(evaluation.percent_of_class[:, 2], 100.0)


def test_none_relative_is_zero(evaluations):
    np.testing.assert_array_equal(evaluations[0].relative_percent, np.zeros((K, K)))


def test_percent_rows_sum_to_100(evaluations):
    for evaluation in evaluations:
        np.testing.assert_allclose(evaluation.percent_of_class.sum(axis=1), 100.0, err_msg=evaluation.filter)


def test_relative_rows_sum_to_zero(evaluations):
    for evaluation in evaluations:
        np.testing.assert_allclose(evaluation.relative_percent.sum(axis=1), 0.0, atol=1e-9, err_msg=evaluation.filter)


def test_mask_chunks_give_same_result(data, evaluations):
    images, labels = data
    # A budget of two filtered batches of 7 images splits the 10 masks into chunks of two.
    chunked = evaluate_filtered(CosineReader(), images, labels, standard_filters(SIZE), num_classes=K,
                                batch_size=7, memory_bytes=2 * 7 * 3 * SIZE * SIZE * 4)
    for small, large in zip(chunked, evaluations):
        np.testing.assert_array_equal(small.confusion, large.confusion)


def test_unfiltered_computed_without_none(data, evaluations):
    images, labels = data
    filters = {"stop": standard_filters(SIZE)["stop B1+B2"]}
    (evaluation,) = evaluate_filtered(CosineReader(), images, labels, filters, num_classes=K)
    np.testing.assert_array_equal(evaluation.unfiltered_confusion, evaluations[0].confusion)


def test_absent_class_gives_nan(data):
    images, labels = data
    keep = labels != 3
    (evaluation,) = evaluate_filtered(CosineReader(), images[keep], labels[keep], {"none": None}, num_classes=K)
    assert np.isnan(evaluation.recall[3])
    assert np.isnan(evaluation.percent_of_class[3]).all()


@pytest.mark.cuda
def test_cuda_matches_cpu(data, evaluations):
    images, labels = data
    model = CosineReader().cuda()
    on_cuda = evaluate_filtered(model, images, labels, standard_filters(SIZE), num_classes=K)
    for gpu, cpu in zip(on_cuda, evaluations):
        np.testing.assert_array_equal(gpu.confusion, cpu.confusion, err_msg=gpu.filter)


def test_evaluate_restores_train_mode(data):
    images, labels = data
    model = CosineReader().train()
    evaluate_filtered(model, images, labels, {"none": None}, num_classes=K)
    assert model.modes and not any(model.modes)
    assert model.training


def test_frame_layout(evaluations):
    frame = evaluations_to_frame(evaluations, CLASSES, iteration=7, epoch=1.75)
    assert list(frame.columns) == list(TABLE_COLUMNS)
    assert len(frame) == len(evaluations) * K * K
    row = frame[(frame["filter"] == "stop B1+B2") & (frame["true_class"] == "low")
                & (frame["predicted_class"] == "low")].iloc[0]
    assert row["filter_kind"] == "band_stop"
    assert row["bands"] == "B1+B2"
    assert row["relative_percent"] == evaluations[5].relative_percent[0, 0]


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------


def test_mask_size_mismatch(data):
    images, labels = data
    with pytest.raises(InvalidInputError, match="differs from the image size"):
        evaluate_filtered(CosineReader(), images, labels, standard_filters(16), num_classes=K)


def test_labels_out_of_range(data):
    images, labels = data
    with pytest.raises(InvalidInputError, match=r"labels.*\[0, 3\]"):
        evaluate_filtered(CosineReader(), images, labels + 1, {"none": None}, num_classes=K)


def test_labels_wrong_length(data):
    images, labels = data
    with pytest.raises(InvalidInputError, match="one label per image"):
        evaluate_filtered(CosineReader(), images, labels[:-1], {"none": None}, num_classes=K)


def test_unknown_band_index():
    with pytest.raises(InvalidInputError, match="band_stop_sets.*out of range"):
        standard_filters(SIZE, band_stop_sets=[(0, 4)])


def test_empty_band_set():
    with pytest.raises(InvalidInputError, match="band_pass_sets"):
        standard_filters(SIZE, band_pass_sets=[()])


def test_empty_filters(data):
    images, labels = data
    with pytest.raises(InvalidInputError, match="filters.*empty"):
        evaluate_filtered(CosineReader(), images, labels, {}, num_classes=K)


def test_tracker_empty_filters(data):
    images, labels = data
    with pytest.raises(InvalidInputError, match="filters.*empty"):
        LearningDynamics(images, labels, CLASSES, filters={})


def test_model_output_shape(data):
    images, labels = data
    with pytest.raises(InvalidInputError, match="model output"):
        evaluate_filtered(CosineReader(), images, labels, {"none": None}, num_classes=K + 1)


def test_empty_schedule(data):
    images, labels = data
    with pytest.raises(InvalidInputError, match="schedule"):
        LearningDynamics(images, labels, CLASSES, at_start=False, at_end=False)


def test_bad_every_iterations(data):
    images, labels = data
    with pytest.raises(InvalidInputError, match="every_iterations"):
        LearningDynamics(images, labels, CLASSES, every_iterations=0)


def test_missing_normalization(data):
    images, labels = data
    tracker = LearningDynamics(images, labels, CLASSES, filters={"none": None})
    with pytest.raises(InvalidInputError, match="normalized=True"):
        tracker.on_train_begin(fake_state(CosineReader(), 0, 0))


# --------------------------------------------------------------------------
# The callback
# --------------------------------------------------------------------------


def test_schedule_iterations(data):
    images, labels = data
    tracker = LearningDynamics(images, labels, CLASSES, {"none": None}, every_iterations=3, at_iterations=[5],
                               every_epochs=1, normalized=True)
    drive(tracker, CosineReader(), 8)
    assert sorted(pd.unique(tracker.table["iteration"])) == [0, 3, 4, 5, 6, 8]


def test_schedule_epoch_column(data):
    images, labels = data
    tracker = LearningDynamics(images, labels, CLASSES, {"none": None}, every_epochs=1, at_start=False,
                               normalized=True)
    drive(tracker, CosineReader(), 8)
    epochs = tracker.table.groupby("iteration")["epoch"].first()
    assert epochs.to_dict() == {4: 1.0, 8: 2.0}


def test_table_row_count(data):
    images, labels = data
    filters = standard_filters(SIZE)
    tracker = LearningDynamics(images, labels, CLASSES, filters, every_iterations=2, normalized=True)
    drive(tracker, CosineReader(), 4)
    assert len(tracker.table) == 3 * len(filters) * K * K


def test_tracker_matches_evaluate(data, evaluations):
    images, labels = data
    tracker = LearningDynamics(images, labels, CLASSES, normalized=True, at_end=False)
    drive(tracker, CosineReader(), 0)
    expected = evaluations_to_frame(evaluations, CLASSES, iteration=0, epoch=0.0)
    pd.testing.assert_frame_equal(tracker.table, expected)


def test_tracker_normalizes(data):
    images, labels = data
    mean, std = torch.tensor([0.4, 0.5, 0.6]), torch.tensor([0.2, 0.25, 0.3])
    tracker = LearningDynamics(images, labels, CLASSES, at_end=False)
    drive(tracker, CosineReader(), 0, normalization=(mean, std))
    normalized = (images - mean[:, None, None]) / std[:, None, None]
    expected = evaluate_filtered(CosineReader(), normalized, labels, standard_filters(SIZE), num_classes=K)
    frame = evaluations_to_frame(expected, CLASSES, iteration=0, epoch=0.0)
    pd.testing.assert_frame_equal(tracker.table, frame)


def test_callback_restores_train_mode(data):
    images, labels = data
    model = CosineReader().train()
    tracker = LearningDynamics(images, labels, CLASSES, {"none": None}, every_iterations=2, normalized=True)
    drive(tracker, model, 4)
    assert model.modes and not any(model.modes)
    assert model.training


def test_callback_keeps_eval_mode(data):
    images, labels = data
    model = CosineReader().eval()
    tracker = LearningDynamics(images, labels, CLASSES, {"none": None}, normalized=True)
    drive(tracker, model, 1)
    assert not model.training


def test_state_dict_round_trip(data, tmp_path):
    images, labels = data
    filters = standard_filters(SIZE, band_stop_sets=[(0, 1)])
    options = dict(every_iterations=2, every_epochs=1, normalized=True)

    uninterrupted = LearningDynamics(images, labels, CLASSES, filters, **options)
    drive(uninterrupted, CosineReader(), 8)

    first = LearningDynamics(images, labels, CLASSES, filters, **options)
    first.on_train_begin(fake_state(CosineReader(), 0, 0))
    for iteration in range(1, 5):
        state = fake_state(CosineReader(), iteration, iteration // 4)
        first.on_iteration_end(state)
    first.on_epoch_end(fake_state(CosineReader(), 4, 1))
    torch.save(first.state_dict(), tmp_path / "state.pt")

    resumed = LearningDynamics(images, labels, CLASSES, filters, **options)
    resumed.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    drive(resumed, CosineReader(), 8, start=4)
    pd.testing.assert_frame_equal(resumed.table, uninterrupted.table)


def test_state_dict_other_classes(data):
    images, labels = data
    tracker = LearningDynamics(images, labels, CLASSES, {"none": None}, normalized=True)
    other = LearningDynamics(images, labels, ["a", "b", "c", "d"], {"none": None}, normalized=True)
    with pytest.raises(InvalidInputError, match="classes"):
        other.load_state_dict(tracker.state_dict())


def test_csv_round_trip(data, tmp_path):
    images, labels = data
    tracker = LearningDynamics(images, labels, CLASSES, standard_filters(SIZE, band_stop_sets=[(0, 1)]),
                               every_iterations=2, normalized=True)
    drive(tracker, CosineReader(), 4)
    path = tracker.to_csv(tmp_path / "table.csv")
    pd.testing.assert_frame_equal(load_dynamics(path), tracker.table, check_dtype=False)


def test_csv_written_to_out_dir(data, tmp_path):
    images, labels = data
    tracker = LearningDynamics(images, labels, CLASSES, {"none": None}, every_iterations=1, at_end=False,
                               normalized=True)
    model = CosineReader()
    tracker.on_train_begin(fake_state(model, 0, 0, out_dir=tmp_path))
    tracker.on_iteration_end(fake_state(model, 1, 0, out_dir=tmp_path))
    table = load_dynamics(tmp_path / "dynamics.csv")
    assert sorted(pd.unique(table["iteration"])) == [0, 1]
    assert [p.name for p in tmp_path.iterdir()] == ["dynamics.csv"]


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_dynamics(tmp_path / "absent.csv")


def test_load_wrong_columns(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="missing columns"):
        load_dynamics(path)


def tiny_training(out_dir, iterations, tracker_options):
    """Train a linear classifier for a few steps with a tracker attached; return the tracker."""
    from fslib.datasets import TensorImageDataset
    from fslib.training import TrainConfig, train

    images, labels = make_images(n_per_class=8, seed=1)
    images = images.clamp(0, 1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, K))
    tracker = LearningDynamics(images, labels, CLASSES, standard_filters(SIZE, band_stop_sets=[(0, 1)]),
                               **tracker_options)
    config = TrainConfig(iterations=iterations, batch_size=8, device="cpu", augment="none", val_fraction=0.0,
                         checkpoint_epochs=None, checkpoint_iterations=2, progress=False)
    train(model, TensorImageDataset(images, labels, CLASSES), None, config, callbacks=[tracker], out_dir=out_dir)
    return tracker


def test_real_training_run(tmp_path):
    tracker = tiny_training(tmp_path, 6, dict(every_iterations=2, at_iterations=[3]))
    assert sorted(pd.unique(tracker.table["iteration"])) == [0, 2, 3, 4, 6]
    pd.testing.assert_frame_equal(load_dynamics(tmp_path / "dynamics.csv"), tracker.table, check_dtype=False)


def test_real_training_resume(tmp_path):
    options = dict(every_iterations=2, at_iterations=[3])
    uninterrupted = tiny_training(tmp_path / "full", 6, options)
    tiny_training(tmp_path / "resumed", 4, options)
    resumed = tiny_training(tmp_path / "resumed", 6, options)
    pd.testing.assert_frame_equal(resumed.table, uninterrupted.table)


# --------------------------------------------------------------------------
# Summary and learned_first
# --------------------------------------------------------------------------


def test_summary_matches_evaluations(data, evaluations):
    table = evaluations_to_frame(evaluations, CLASSES, iteration=3, epoch=0.5)
    summary = summarize_dynamics(table)
    assert len(summary) == len(evaluations) * K
    for evaluation in evaluations:
        rows = summary[summary["filter"] == evaluation.filter]
        np.testing.assert_allclose(rows["recall"], evaluation.recall)
        np.testing.assert_allclose(rows["accuracy"], evaluation.recall)
        np.testing.assert_allclose(rows["precision"], evaluation.precision)
        np.testing.assert_allclose(rows["overall_accuracy"], evaluation.accuracy)
        np.testing.assert_allclose(rows["recall_change"], evaluation.recall - evaluations[0].recall)


def test_summary_without_epoch(evaluations):
    summary = summarize_dynamics(evaluations_to_frame(evaluations))
    assert len(summary) == len(evaluations) * K


def confusion_from_recall(recalls, n=10):
    """A confusion matrix whose rows put round(recall * n) images on the diagonal, the rest on the next class."""
    matrix = np.zeros((len(recalls), len(recalls)), dtype=np.int64)
    for t, recall in enumerate(recalls):
        matrix[t, t] = round(recall * n)
        matrix[t, (t + 1) % len(recalls)] = n - matrix[t, t]
    return matrix


def test_learned_first_rule():
    unfiltered = confusion_from_recall([1.0, 1.0, 1.0, 1.0])
    history = {0: [0.2, 0.2, 0.2, 0.2], 10: [0.2, 0.8, 0.2, 0.2], 20: [0.9, 0.9, 0.9, 0.2]}
    frames = [
        evaluations_to_frame([FilterEvaluation("pass B1", confusion_from_recall(recalls), unfiltered)],
                             CLASSES, iteration=iteration, epoch=iteration / 10)
        for iteration, recalls in history.items()
    ]
    result = learned_first(pd.concat(frames, ignore_index=True), threshold=0.5).set_index("class")
    assert result.loc["mid", "first_iteration"] == 10
    assert bool(result.loc["mid", "learned_first"])
    assert result.loc["low", "rank"] == 2
    assert math.isnan(result.loc["high", "first_iteration"])
    assert not bool(result.loc["high", "learned_first"])


def test_learned_first_min_precision():
    unfiltered = confusion_from_recall([1.0, 1.0, 1.0, 1.0])
    collapsed = np.zeros((K, K), dtype=np.int64)
    collapsed[:, 0] = 10
    frame = evaluations_to_frame([FilterEvaluation("stop B3+B4", collapsed, unfiltered)], CLASSES, iteration=0,
                                 epoch=0.0)
    assert bool(learned_first(frame).set_index("class").loc["low", "learned_first"])
    strict = learned_first(frame, min_precision=0.5).set_index("class")
    assert math.isnan(strict.loc["low", "first_iteration"])


def test_learned_first_unknown_kind(evaluations):
    table = evaluations_to_frame(evaluations, CLASSES, iteration=0, epoch=0.0)
    with pytest.raises(InvalidInputError, match="kind"):
        learned_first(table, kind="low_pass")


# --------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------


def test_plot_dynamics_panels(data):
    images, labels = data
    tracker = LearningDynamics(images, labels, CLASSES, every_iterations=2, normalized=True)
    drive(tracker, CosineReader(), 2)
    fig = plot_dynamics(tracker.table, kind="band_stop")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 6
    plt.close(fig)


def test_plot_relative_confusion_centred(evaluations):
    table = evaluations_to_frame(evaluations, CLASSES, iteration=0, epoch=0.0)
    fig = plot_relative_confusion(table, 0, "stop B1+B2")
    mesh = fig.axes[0].collections[0]
    assert mesh.norm.vmin == -mesh.norm.vmax
    plt.close(fig)


def test_plot_relative_unknown_iteration(evaluations):
    table = evaluations_to_frame(evaluations, CLASSES, iteration=0, epoch=0.0)
    with pytest.raises(InvalidInputError, match="iteration"):
        plot_relative_confusion(table, 5, "stop B1+B2")


def test_plot_relative_confusion_no_warning(evaluations):
    table = evaluations_to_frame(evaluations, CLASSES, iteration=0, epoch=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PendingDeprecationWarning)
        fig = plot_relative_confusion(table, 0, "stop B1+B2")
    plt.close(fig)
