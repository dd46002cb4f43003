# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# (dominant-frequency-maps)=
# # Dominant frequency maps
#
# A dominant frequency map (DFM) marks, for one class, the frequencies that a
# trained network needs most to recognise that class: remove one of them
# from the class's images and the loss rises more than for almost any other.
# This chapter trains the network that the following chapters study, runs
# the search for its DFMs in two ways (the paper's exhaustive search and
# fslib's faster screened search), and compares the maps and the cost. The
# model, the data description, both search results and both sets of maps are
# saved for the chapters on frequency shortcuts and on their transfer.

# %%
import json

import torch

from fslib import datasets, dfm, metrics, models, training
from fslib.book import dfm_chapter
from fslib.book.notebook import glue_figure
from fslib.book.store import chapter_dir, write_metrics
from fslib.plotting import set_style

set_style()

# %% tags=["parameters"]
data = "photos"  # data set: "photos" (embedded photographs), "imagenet10" or "cifar10"
image_size = 32  # image side in pixels (photos and ImageNet-10; CIFAR-10 is always 32)
train_per_class = 200  # photo crops per class in the training split
test_per_class = 50  # photo crops per class in the test split
seed = 0  # seed of the photo crops and of training
model_name = "resnet18"  # architecture from fslib.models.list_models()
width = 8  # network width (64: the standard ResNet18; 8: a CPU-sized one)
epochs = 12  # training epochs
lr = 0.02  # initial SGD learning rate
plateau_patience = 2  # epochs without a lower validation loss before the learning rate drops tenfold
train_batch_size = 64  # images per optimizer step
loader_workers = 0  # DataLoader worker processes while training (folder data sets decode images in them)
search_per_class = 10  # test images per class used by the DFM search
patch_size = 1  # side of the removed frequency patch, in frequency indices
top_percent = 5.0  # share of the spectrum kept in each DFM, in percent
device = None  # "cpu", "cuda" or None (CUDA when available)
threads = 1  # torch CPU threads (a width-8 model gains little from more)
imagenet10_dir = None  # ImageNet-10 folder with train/ and val/, needed when data is "imagenet10"
cifar10_dir = None  # folder with cifar-10-batches-py/, needed when data is "cifar10"
artifacts_dir = None  # set by the build: where this chapter writes the model, maps and metrics.json
upstream = None  # set by the build: folders of the chapters this one reads (none)

# %%
torch.set_num_threads(threads)
out = chapter_dir(artifacts_dir, "05_dominant_frequency_maps")
spec = dfm_chapter.natural_data_spec(data, size=image_size, seed=seed, train_per_class=train_per_class,
                                     test_per_class=test_per_class, imagenet10_dir=imagenet10_dir,
                                     cifar10_dir=cifar10_dir)
train_data = dfm_chapter.natural_dataset(spec, "train")
test_data = dfm_chapter.natural_dataset(spec, "test")
classes = list(train_data.classes)
num_classes = len(classes)
size = int(train_data[0][0].shape[-1])
description = dict(spec, classes=classes, search_per_class=search_per_class)
(out / "data.json").write_text(json.dumps(description, indent=2) + "\n")
print(f"data: {description}")
print(f"{len(train_data)} training and {len(test_data)} test images of {size} px, {num_classes} classes")

# %% [markdown]
# The data description above is saved as `data.json`; the later chapters
# rebuild exactly these images from it.
#
# ## The model
#
# The network is a ResNet18 with the CIFAR-style stem of the paper's official
# code (a 3x3 stride-1 first convolution, no max-pool), at the width set by
# the parameters, trained with fslib's version of the official recipe (SGD
# with Nesterov momentum, weight decay 1e-4, padding, flips and random
# resized crops). It sees normalised images, and the normalisation statistics
# are saved with its weights.

# %%
torch.manual_seed(seed)  # the initial weights come from the global generator
model = models.build_model(model_name, num_classes, size, width=width)
config = training.TrainConfig(epochs=epochs, lr=lr, batch_size=train_batch_size, plateau_patience=plateau_patience,
                              seed=seed, device=device, num_workers=loader_workers, progress=False,
                              checkpoint_epochs=None)
trained, train_seconds = dfm_chapter.timed(training.train, model, train_data, None, config)
mean, std = trained.normalization
test_eval = training.evaluate(model, test_data, (mean, std))
models.save_checkpoint(out / "model.pt", model, {
    "classes": classes, "normalization": {"mean": mean.tolist(), "std": std.tolist()},
    "data": description, "train_config": config.to_dict(),
})
recall = dict(zip(classes, test_eval["per_class_accuracy"]))
print(f"{models.count_parameters(model):,} parameters; training: {trained.epochs} epoch(s), {train_seconds:.0f} s")
print(f"validation accuracy {trained.metrics['val']['accuracy']:.3f}, test accuracy {test_eval['accuracy']:.3f}")
print("test recall per class: " + ", ".join(f"{name} {value:.2f}" for name, value in recall.items()))

# %% [markdown]
# The printout gives the test accuracy and the recall of each class (the
# share of its test images predicted correctly). For the embedded
# photographs the test crops come from a strip of each photograph that no
# training crop touches, so the test accuracy measures generalisation to
# unseen parts of the same photographs.
# A class with low recall gets a DFM too, but that map then describes the
# frequencies that keep the loss of a poorly recognised class from rising
# further, which is harder to interpret.
#
# ## The search
#
# ```{admonition} Paper
# :class: note
# For each class the paper removes one frequency, together with its mirror
# through the zero frequency, from the class's test images, records the
# cross-entropy loss, ranks the frequencies by it and keeps the top X% as the
# class's binary DFM; the main results keep the top 5% {cite}`wang2023frequency`
# [paper, code]. fslib's `method="exact"` is that search: one model evaluation
# per class, frequency pair and image. `method="fast"` is fslib's own
# screening, not the paper's. It ranks all pairs by a first-order estimate
# of the loss change (one gradient per image) and evaluates the best
# candidates exactly on the class's image of largest loss. Only candidates
# that may still cross the map's boundary get more images, twice as many
# per round, up to every image.
# ```

# %%
search_images, search_labels = dfm_chapter.class_images(test_data, per_class=search_per_class)
search_inputs = datasets.normalize(search_images, mean, std)  # (M, 3, H, W), the model's input space
options = dict(patch_size=patch_size, top_percent=top_percent, device=device, progress=False, seed=seed)
exact, exact_seconds = dfm_chapter.timed(dfm.search, model, search_inputs, search_labels, method="exact", **options)
exact.save(out / "search_exact.npz")
exact_summary = exact.summary(top_percent)
exact_summary.insert(0, "name", classes)
print(f"exact search: {len(search_labels)} images, {exact.exact_evaluations:,} removals evaluated "
      f"in {exact_seconds:.1f} s on {exact.metadata['device']}")
print(exact_summary.to_string(index=False, float_format=lambda value: f"{value:.3g}"))

# %% [markdown]
# For each class the table gives the images searched, the mean loss on the
# unfiltered images (`baseline_loss`), the noise floor, the number of
# frequencies whose removal raises the loss by more than that floor
# (`above_floor`), the share of the spectrum that the DFM keeps
# (`kept_share`) and the part of it kept only by the tie rule (`tie_share`).
#
# The noise floor is the change in loss that rounding alone produces: the
# search evaluates the unfiltered images again in another batch order and
# with every pixel changed by one rounding step, and takes four times the
# largest deviation. A rise below it cannot be told apart from rounding.
# When fewer frequencies rise above the floor than `top_percent` asks for,
# the rest of the map is filled by ties, broken towards low frequencies; such
# a map is mostly a statement that the class's loss barely reacts to any
# single frequency, typically because the model is very confident on it.

# %%
exact_selection = exact.selection(top_percent)
mostly_ties = [name for name, kept, tie in zip(classes, exact_selection.kept_share, exact_selection.tie_share)
               if tie > kept / 2]
print(f"classes whose exact DFM is mostly ties: {mostly_ties or 'none'}")
changes = exact.loss_changes.float()  # (K, H, W)
centre = (size // 2, size // 2)
print("loss change when the zero frequency is removed: "
      + ", ".join(f"{name} {value:.2f}" for name, value in zip(classes, changes[:, centre[0], centre[1]].tolist())))
changes[:, centre[0], centre[1]] = float("nan")
limit = float(torch.quantile(changes[changes.isfinite()].abs(), 0.995))
fig = metrics.plot_class_maps(changes, classes, cmap="RdBu_r", vmin=-limit, vmax=limit, colorbar_label="loss change")
glue_figure("dfm_loss_changes", fig, out)
exact_maps = exact_selection.maps  # (K, H, W) 0/1
header = dict(patch_size=patch_size, top_percent=top_percent, classes=classes, model=model_name,
              data=spec["source"])
dfm.save_dfm(exact_maps, out / "dfm_exact.npz", **header, extra={"method": "exact"})
glue_figure("dfm_exact_maps", dfm.plot_dfm(exact_maps, classes), out)

# %% [markdown]
# ```{glue:figure} dfm_loss_changes
# :name: fig-dfm-loss-changes
#
# Rise of each class's mean loss when one frequency (with its mirror) is
# removed from its test images, exact search: red where the loss rises, blue
# where it falls. The zero frequency (centre) is left blank, and the
# symmetric colour scale is clipped at the 99.5th percentile of the absolute
# changes.
# ```
#
# ```{glue:figure} dfm_exact_maps
# :name: fig-dfm-exact-maps
#
# Dominant frequency maps of the exact search: the `top_percent` frequencies
# with the largest loss rise per class (dark), with the share kept in each title.
# ```
#
# Removing the zero frequency shifts the mean brightness of every channel.
# The printed loss changes give its cost per class; for a well-trained model
# it is usually far above that of any other single frequency, so the figure
# leaves it out to keep the colour scale readable.
# {numref}`fig-dfm-loss-changes` shows where else the model is sensitive:
# near the centre, where natural images carry most of their energy, along
# lines through the centre (an orientation that the class's edges or stripes
# share), or at scattered points further out. Blue cells are frequencies
# whose removal lowers the loss; they tend to appear for classes with low
# recall, where a component that points the model to another class is
# removed. The DFMs in
# {numref}`fig-dfm-exact-maps` keep the strongest of these. A map that is a
# compact disc around the centre belongs to a class listed above as mostly
# ties: its frequencies were kept by the tie rule (smallest radius first),
# not by their loss.
#
# ## Exact against fast
#
# The fast search keeps the maps of the exact search if its screening does
# not miss a frequency that belongs in them. The comparison below gives the
# Jaccard index of the two maps of each class, the recall of the exact map's
# frequencies that lie above the noise floor (ties are left out, since their
# order is arbitrary), the number of exact evaluations of each method and
# their compute and wall time. The fast search's compute counts every image
# passed through the model, and its gradient pass as 3 per image.

# %%
fast, fast_seconds = dfm_chapter.timed(dfm.search, model, search_inputs, search_labels, method="fast", **options)
fast.save(out / "search_fast.npz")
fast_maps = fast.selection(top_percent).maps
dfm.save_dfm(fast_maps, out / "dfm_fast.npz", **header, extra={"method": "fast"})
comparison = dfm.compare_maps(fast, exact, top_percent)
speedup = exact_seconds / fast_seconds
for name, jac, rec in zip(classes, comparison["jaccard"], comparison["recall_above_floor"]):
    print(f"{name:22s} Jaccard {jac:.2f}   recall above floor {rec:.2f}")
print(f"mean Jaccard {comparison['jaccard_mean']:.3f}, mean recall above floor {comparison['recall_mean']:.3f}")
compute_share = fast.metadata["forward_equivalents"] / exact.metadata["forward_equivalents"]
print(f"removals evaluated on every image: exact {exact.exact_evaluations:,}, fast {fast.exact_evaluations:,}")
print(f"compute: the fast search used {100 * compute_share:.1f}% of the exact search's ({1 / compute_share:.1f}x less)")
misses = dict(zip(classes, fast.metadata["interval_misses"]))
refinements = dict(zip(classes, fast.metadata["refinements"]))
print("refined estimates outside their previous interval, per class:",
      {name: f"{misses[name]} of {refinements[name]}" for name in classes})
print(f"wall time: exact {exact_seconds:.1f} s, fast {fast_seconds:.1f} s, speed-up {speedup:.1f}x")
glue_figure("dfm_fast_maps", dfm.plot_dfm(fast_maps, classes), out)

# %% [markdown]
# ```{glue:figure} dfm_fast_maps
# :name: fig-dfm-fast-maps
#
# Dominant frequency maps of the fast search, at the same `top_percent`.
# ```
#
# A Jaccard index of 1 means identical maps. An index below 1 with a recall
# of 1 means that the maps differ only in tied frequencies, whose order the
# tie rule decides. A recall below 1 means that the screening missed a
# frequency whose exact loss rise is measurable. A class where many refined
# estimates fell outside their previous interval is one where the
# first-order estimate is a poor guide, and its fast map is the least
# reliable. The fast method's wall
# time includes its gradient pass and the noise floor, so its speed-up can
# differ from its compute share.
#
# ```{admonition} Paper
# :class: note
# The search is expensive: the follow-up work reports 7.5 GPU-hours for a
# ResNet18 on CIFAR-10 on one A40 and estimates 8,500 GPU-hours for
# ImageNet-1k {cite}`wang2025hfss` [follow-up]. On 224 px images the frequency
# patch is likely 2x2 [follow-up]. This chapter's `patch_size` sets it: 1 at
# 32 px under the quick profile, 2 at 224 px under the paper profile. The
# numbers above are this book's, measured on its own hardware, with
# `search_per_class` test images per class.
# ```
#
# ## The maps applied to images

# %%
fig = dfm.plot_gallery(search_inputs, search_labels, exact_maps, classes, per_class=3, denormalize=(mean, std))
glue_figure("dfm_gallery", fig, out)

# %% [markdown]
# ```{glue:figure} dfm_gallery
# :name: fig-dfm-gallery
#
# Each class's exact DFM (left) and three of its test images filtered to keep
# only the frequencies of that map.
# ```
#
# Keeping only `top_percent` of the spectrum leaves blurred images with the coarse
# layout and, where the map reaches out, some stripes or grain
# ({numref}`fig-dfm-gallery`). Whether the model still recognises a class
# from these images alone, and whether other classes filtered with the same
# map are then taken for it, is the frequency-shortcut test of the next
# chapter.

# %%
results = {
    "test_accuracy": test_eval["accuracy"],
    "val_accuracy": trained.metrics["val"]["accuracy"],
    "per_class_recall": recall,
    "classes": classes,
    "model": model_name,
    "width": width,
    "epochs": trained.epochs,
    "image_size": size,
    "patch_size": patch_size,
    "top_percent": top_percent,
    "search_images_per_class": search_per_class,
    "noise_floor": dict(zip(classes, (float(v) for v in exact.noise_floor))),
    "above_floor": dict(zip(classes, (int(v) for v in exact.above_floor))),
    "above_floor_fast": dict(zip(classes, (int(v) for v in fast.above_floor))),
    "mostly_ties": mostly_ties,
    "jaccard_fast_exact": dict(zip(classes, comparison["jaccard"])),
    "jaccard_fast_exact_mean": comparison["jaccard_mean"],
    "recall_above_floor": dict(zip(classes, comparison["recall_above_floor"])),
    "recall_above_floor_mean": comparison["recall_mean"],
    "exact_evaluations_exact": exact.exact_evaluations,
    "exact_evaluations_fast": fast.exact_evaluations,
    "compute_share_fast": compute_share,
    "forward_equivalents_fast": fast.metadata["forward_equivalents"],
    "interval_misses_fast": misses,
    "search_seconds_exact": exact_seconds,
    "search_seconds_fast": fast_seconds,
    "search_speedup": speedup,
    "train_seconds": train_seconds,
    "search_device": exact.metadata["device"],
}
write_metrics(out, results)
keys = {
    "test_accuracy, val_accuracy": "accuracy of the trained model on the test split and the held-out 10%",
    "per_class_recall": "per class, share of its test images predicted correctly",
    "top_percent, patch_size": "share of the spectrum kept per map (percent) and patch side",
    "search_images_per_class": "test images per class used by both searches",
    "noise_floor, above_floor": "exact search: floor per class and frequencies with a rise above it",
    "above_floor_fast": "the same count in the fast search (only frequencies it evaluated)",
    "mostly_ties": "classes whose exact map is filled more than half by the tie rule",
    "jaccard_fast_exact(_mean)": "per class (and mean) Jaccard index of the fast and exact maps",
    "recall_above_floor(_mean)": "share of the exact map's above-floor frequencies that the fast map keeps",
    "exact_evaluations_exact, exact_evaluations_fast": "(class, frequency) removals evaluated on every image",
    "compute_share_fast": "images through the model in the fast search over those of the exact search",
    "forward_equivalents_fast": "images through the model in the fast search (gradient pass: 3 per image)",
    "interval_misses_fast": "per class, refined estimates of the fast search outside their previous interval",
    "search_seconds_exact, search_seconds_fast, search_speedup": "wall time of each search and their ratio",
}
for key, meaning in keys.items():
    print(f"{key:58s} {meaning}")

# %% [markdown]
# ## Summary
#
# - The model trained here is saved as `model.pt` with its class names and
#   normalisation, and `data.json` describes its data; the next chapters load
#   both.
# - The exact search removes each frequency pair from each class's test
#   images, as the paper does; its loss maps and the DFMs at `top_percent`
#   are in {numref}`fig-dfm-loss-changes` and {numref}`fig-dfm-exact-maps`.
#   Frequencies whose loss rise stays below the noise floor are ties, and the
#   chapter names the classes whose maps are mostly ties.
# - The fast search reproduces the exact maps to the Jaccard index and
#   recall printed above, at the compute share printed there. Both results are saved
#   (`search_exact.npz`, `search_fast.npz`, `dfm_exact.npz`, `dfm_fast.npz`).
# - The numbers go to `metrics.json` for the chapter that compares the book's
#   results with the paper's.
