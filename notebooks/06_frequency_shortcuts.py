# ---
# jupyter:
#   fslib:
#     depends: [05_dominant_frequency_maps]
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
# (frequency-shortcuts)=
# # Frequency shortcuts: does a class's map alone carry the class?
#
# A dominant frequency map (DFM) lists the frequencies a trained model relies
# on most for one class. This chapter tests whether those frequencies are a
# *shortcut*: it keeps only the frequencies of class `c`'s map in **every**
# test image and counts how many images of `c` the model still recognises
# (the true positive rate, TPR) and how many images of other classes it now
# calls `c` (the false positive rate, FPR). It uses the model and the maps of
# the chapter on dominant frequency maps, shows the table per class, the
# confusion matrix under each map and filtered images, and asks which
# shortcuts are texture-like and which object-like.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from myst_nb import glue

from fslib import dfm, fourier
from fslib.book import shortcut_chapter as sc
from fslib.book.notebook import glue_figure
from fslib.book.store import chapter_dir, upstream_dir, write_metrics
from fslib.plotting import set_style

set_style()

# %% tags=["parameters"]
dfm_method = "exact"  # which maps of the DFM chapter to test: "exact" (the paper's search) or "fast"
tpr_threshold = 0.5  # minimum TPR of a shortcut (share of the class's images, 0 to 1)
fpr_threshold = 0.0  # minimum rise of the FPR over the unfiltered model's FPR of a shortcut (share, 0 to 1)
n_bands = 4  # radial bands for the texture/object comparison (equal-width rings, the last to the corner)
gallery_per_class = 4  # filtered test images shown per class
authors_dfm = None  # optional DFM pickle in the authors' format to test as well (None: skip)
batch_size = 256  # images per forward pass
threads = 1  # torch CPU threads (1 is fastest on a busy machine)
device = None  # "cpu", "cuda" or None (CUDA when available)
artifacts_dir = None  # set by the build: where this chapter writes figures and metrics.json
upstream = None  # set by the build: {"05_dominant_frequency_maps": folder with model.pt, data.json, dfm_*.npz}

# %%
torch.set_num_threads(threads)
out = chapter_dir(artifacts_dir, "06_frequency_shortcuts")
source = upstream_dir(upstream, "05_dominant_frequency_maps")
reference = sc.load_reference(source, dfm_method)
model, meta, classes = reference.model, reference.meta, reference.classes
mean, std = reference.mean, reference.std
images, labels = reference.test_images, reference.test_labels  # (N, 3, H, W) normalised, where the maps filter; (N,)
maps = reference.maps  # (K, H, W), centred
print(f"model {meta['name']} (width {meta['width']}), {len(classes)} classes, "
      f"{images.shape[0]} test images of {tuple(images.shape[1:])}")
print(f"maps from the {dfm_method} search: {tuple(maps.shape)}, top {reference.top_percent}% "
      f"of the spectrum per class")

# %% [markdown]
# The model, the data description and the maps come from the artifact folder
# of the dominant-frequency-map chapter, so this chapter tests exactly the maps
# shown there. The test crops are rebuilt from the data description and
# normalised with the statistics stored in the checkpoint, because the maps
# filter the model's input space.
#
# ## The TPR/FPR test

# %%
report = dfm.shortcut_table(model, images, labels, maps, class_names=classes, tpr_threshold=tpr_threshold,
                            fpr_threshold=fpr_threshold, batch_size=batch_size, device=device)
table = report.table.copy()
table["kind"] = sc.photo_kinds(table["name"])
summary = sc.shortcut_summary(table)
glue("shortcuts_count", summary["shortcut_count"], display=False)
glue("shortcuts_classes", ", ".join(summary["shortcut_classes"]) or "none", display=False)
print(f"unfiltered test accuracy: {report.baseline['accuracy']:.3f}")
print(f"rule: TPR >= {tpr_threshold} and FPR - unfiltered FPR > {fpr_threshold}")
columns = ["name", "kind", "tpr", "fpr", "baseline_recall", "baseline_fpr", "fpr_raise", "kept_percent", "is_shortcut"]
print(table[columns].round(3).to_string(index=False))
print(f"mean TPR {summary['mean_tpr']:.3f}, mean FPR {summary['mean_fpr']:.3f}, "
      f"shortcuts: {summary['shortcut_classes'] or 'none'}")

# %% [markdown]
# Each row of the table above is one map applied to all test images. `tpr` is
# the share of the class's own images still predicted as the class with only
# the map's frequencies left; `baseline_recall` is the same share without
# filtering. `fpr` is the share of the other classes' images that the filtered
# images send to the class, and `fpr_raise` compares it with the unfiltered
# `baseline_fpr`. `kept_percent` is the map's share of the spectrum.
#
# The rule marks a class as a frequency shortcut when its TPR reaches
# `tpr_threshold` **and** its FPR rises above the unfiltered FPR by more than
# `fpr_threshold`: a few percent of the spectrum then suffice for the class,
# and they are enough to pull images of other classes into it. With the
# thresholds of this run, {glue:text}`shortcuts_count` class(es) pass:
# {glue:text}`shortcuts_classes`.
#
# ```{admonition} Paper
# :class: note
# The test is the paper's: apply class `c`'s DFM to all test images; `TPR_c` is
# the share of class-`c` images still predicted as `c`, `FPR_c` the share of
# the other images now predicted as `c`; high TPR with a raised FPR marks a
# frequency shortcut [paper, code] {cite}`wang2023frequency`. The paper gives
# no numeric thresholds; `tpr_threshold` and `fpr_threshold` are this book's
# choice and are stored with the results.
# ```

# %%
fig, axis = plt.subplots(figsize=(6.0, 3.4))
positions = np.arange(len(table))
axis.bar(positions - 0.2, table["tpr"], width=0.4, label="TPR")
axis.bar(positions + 0.2, table["fpr"], width=0.4, label="FPR")
axis.scatter(positions + 0.2, table["baseline_fpr"], marker="_", color="black", s=120, label="unfiltered FPR")
axis.axhline(tpr_threshold, color="grey", linestyle="--", linewidth=0.8)
axis.set_xticks(positions)
axis.set_xticklabels(table["name"], rotation=60, ha="right", fontsize=7)
axis.set_ylim(0.0, 1.0)
axis.set_ylabel("rate")
axis.legend(fontsize=7)
fig.tight_layout()
glue_figure("shortcuts_rates", fig, out)

# %% [markdown]
# ```{glue:figure} shortcuts_rates
# :name: fig-shortcuts-rates
#
# TPR and FPR of each class's map; the dashed line is `tpr_threshold`, the
# black marks the FPR of the unfiltered images.
# ```
#
# {numref}`fig-shortcuts-rates` shows the table at a glance: a shortcut is a
# class whose blue bar clears the dashed line and whose orange bar clears its
# black mark.
#
# ## Confusion matrices under each map

# %%
glue_figure("shortcuts_confusions", sc.plot_confusions(report.confusion, classes), out)

# %% [markdown]
# ```{glue:figure} shortcuts_confusions
# :name: fig-shortcuts-confusions
#
# Confusion matrix (rows: true class, columns: predicted class, shares of each
# row) of all test images filtered with one class's map; the red box is that
# class's column.
# ```
#
# In {numref}`fig-shortcuts-confusions` a shortcut shows as a red column that
# is dark along its whole height: with only that class's frequencies left,
# most images of every class are predicted as that class. A map that carries
# no class spreads the predictions over one or two other columns instead,
# which shows which class the model falls back to when the image is reduced
# to a few frequencies.
#
# ## Filtered images

# %%
fig = dfm.plot_gallery(images, labels, maps, classes, per_class=gallery_per_class, denormalize=(mean, std))
glue_figure("shortcuts_gallery", fig, out)

# %% [markdown]
# ```{glue:figure} shortcuts_gallery
# :name: fig-shortcuts-gallery
#
# Each row: a class's map (left) and test images of that class filtered with
# it, mapped back to pixel values.
# ```
#
# The filtered images in {numref}`fig-shortcuts-gallery` are the model's
# inputs in the TPR test. A map of mostly low frequencies leaves a blurred
# colour layout; a map of high frequencies leaves fine grain or edges with no
# recognisable subject. That a model still names the class from such images
# is the shortcut.
#
# ## Texture-like and object-like shortcuts

# %%
edges = fourier.default_band_edges(tuple(maps.shape[-2:]), n_bands)
bands = sc.map_band_table(maps, classes, edges)
merged = table[["name", "tpr", "fpr", "is_shortcut"]].merge(bands, on="name")
merged["map_location"] = np.where(merged["low_share"] >= 0.5, "low bands", "high bands")
print(f"band edges (index units): {edges}")
print(merged.round(3).to_string(index=False))
print()
by_kind = sc.kind_summary(merged)
print(by_kind.round(3).to_string())
glue_figure("shortcuts_bands", sc.plot_band_shares(bands), out)

# %% [markdown]
# ```{glue:figure} shortcuts_bands
# :name: fig-shortcuts-bands
#
# Share of each class's map in each radial band, B1 lowest; the kind of the
# photograph (texture or object) is under the class name.
# ```
#
# The photo classes are of two kinds. Four are textures (brick, grass,
# gravel, a stained tissue section), whose crops are stationary patterns. Six
# show parts of one object (a cat, a cup, a rocket, an astronaut, a flower, a
# motorcycle). The second table above averages each kind: `low_share` is the
# share of a map's frequencies in the lower half of the bands and
# `mean_radius` their mean distance from the zero frequency. If the kind of
# the photograph decided the kind of shortcut, texture maps would sit at the
# frequencies of the repeating grain, away from the centre, and object maps
# in the lowest band, where coarse shape and colour live. Compare the two
# rows of the kind table to see whether this run bears that out. Then read
# {numref}`fig-shortcuts-bands` together with the `is_shortcut` column. A
# shortcut class whose map lies mostly in the upper bands (`map_location`
# "high bands") is texture-like. One whose map lies mostly in the lower bands
# is shape- or colour-like, whatever the photograph's kind.
#
# ```{admonition} Paper
# :class: note
# The paper finds that shortcuts can be texture-based or shape-based,
# depending on what best simplifies the objective [paper], and colour-based
# [summary] {cite}`wang2023frequency`. Here the kind comes from the photograph
# (texture or object) and the location of the map's frequencies is measured;
# the link between the two is this book's reading, not a measurement of the
# paper's.
# ```
#
# ## Against the paper's numbers

# %%
reported = pd.DataFrame([
    {"source": "ResNet18, ImageNet-10 [summary]", "class": "zebra", "tpr": 0.96, "fpr": 0.022},
    {"source": "ResNet18, ImageNet-10 [summary]", "class": "container ship", "tpr": 0.94, "fpr": 0.013},
])
ours = table.sort_values("tpr", ascending=False).head(2)
ours = pd.DataFrame({"source": f"{meta['name']}, photo crops (this run)", "class": ours["name"],
                     "tpr": ours["tpr"].round(3), "fpr": ours["fpr"].round(3)})
print(pd.concat([reported, ours], ignore_index=True).to_string(index=False))

# %% [markdown]
# The table above puts the paper's two clearest shortcuts beside this run's
# two classes of highest TPR. The paper's pattern is a TPR near 1 with an FPR
# of a few percent: the map keeps almost every image of its class and pulls
# in only a few others. Compare that shape, not the values: the data differ
# (ten photographs at low resolution against ImageNet-10 at 224 px), and so do
# the model size and the training length.
#
# ```{admonition} Caveat
# :class: warning
# Reported shortcut numbers vary a lot between runs of the same protocol: for
# ResNet18 on ImageNet-10 an independent paper reports a class average of TPR
# 0.286 / FPR 0.041, and the authors' follow-up re-run gives per-class TPRs
# from 0 to 0.80 [summary, follow-up] {cite}`wang2023dfmx`. A single run at
# quick-profile sizes is one sample of that spread.
# ```
#
# ## The authors' DFM file format

# %%
authors_path = out / "dfm_authors.pkl"
dfm.save_dfm(maps, authors_path, format="authors")
round_trip = dfm.load_dfm(authors_path)
print(f"read back {round_trip.num_classes} maps of {tuple(round_trip.maps.shape[1:])} in the "
      f"{round_trip.format!r} format; identical to the maps tested above: {torch.equal(round_trip.maps, maps)}")
print(pd.DataFrame(dfm.map_summary(round_trip.maps), index=classes).to_string())
if authors_dfm is not None:
    published = dfm.load_dfm(authors_dfm)
    print(pd.DataFrame(dfm.map_summary(published.maps)).to_string())
    if tuple(published.maps.shape) == tuple(maps.shape):
        other = dfm.shortcut_table(model, images, labels, published.maps, class_names=classes,
                                   tpr_threshold=tpr_threshold, fpr_threshold=fpr_threshold,
                                   batch_size=batch_size, device=device)
        print(other.table[["name", "tpr", "fpr", "symmetric", "is_shortcut"]].round(3).to_string(index=False))
    else:
        print(f"not applied: the file holds maps {tuple(published.maps.shape)}, the model needs {tuple(maps.shape)}")

# %% [markdown]
# The authors' follow-up publishes its maps (CIFAR-10, ResNet18 and VGG11) as
# a pickle of a dict from class index to a nested list of floats, with no
# header [follow-up] {cite}`wang2023dfmx`. `fslib.dfm.save_dfm(...,
# format="authors")` writes this chapter's maps that way and
# `fslib.dfm.load_dfm` reads them back unchanged, as printed above; the same
# call reads the published files with a restricted unpickler that runs no
# code. Set `authors_dfm` to such a file to run the TPR/FPR test with it on
# this model: both are 32x32 and ten classes, but the classes differ, so the
# result is a transfer to unrelated classes, not a reproduction. The
# published maps are not all conjugate-symmetric; the `symmetric` column and
# the map summary say which, and filtering then keeps the real part, as the
# authors' code does.
#
# ## Summary

# %%
per_class = sc.per_class_metrics(table)
for row in merged.itertuples(index=False):
    per_class[row.name]["low_share"] = float(row.low_share)
    per_class[row.name]["mean_radius"] = float(row.mean_radius)
    per_class[row.name]["map_location"] = row.map_location
metrics = {
    "dfm_method": dfm_method,
    "test_accuracy": float(report.baseline["accuracy"]),
    "tpr_threshold": tpr_threshold,
    "fpr_threshold": fpr_threshold,
    "mean_tpr": summary["mean_tpr"],
    "mean_fpr": summary["mean_fpr"],
    "shortcut_count": summary["shortcut_count"],
    "shortcut_classes": summary["shortcut_classes"],
    "per_class": per_class,
}
for kind, row in by_kind.iterrows():
    metrics[f"{kind}_low_share"] = float(row["low_share"])
    metrics[f"{kind}_mean_radius"] = float(row["mean_radius"])
    metrics[f"{kind}_mean_tpr"] = float(row["tpr"])
write_metrics(out, metrics)
print(pd.Series({key: value for key, value in metrics.items() if key != "per_class"}).to_string())

# %% [markdown]
# - With only a class's dominant frequencies left in every test image, the
#   model's TPR and FPR per class are in the table of the TPR/FPR test and in
#   {numref}`fig-shortcuts-rates`; the rule with the thresholds above marks the
#   shortcut classes listed there.
# - Under a shortcut's map, images of every class are predicted as that class
#   ({numref}`fig-shortcuts-confusions`), although the filtered images show
#   no recognisable subject ({numref}`fig-shortcuts-gallery`).
# - Where a map's frequencies lie relates the shortcut to texture (upper bands)
#   or to shape and colour (lowest band) ({numref}`fig-shortcuts-bands`).
# - `metrics.json` holds: `dfm_method`, `test_accuracy` (unfiltered),
#   `tpr_threshold`, `fpr_threshold`, `mean_tpr`, `mean_fpr`,
#   `shortcut_count`, `shortcut_classes`, `per_class` (per class name: `tpr`,
#   `fpr`, `is_shortcut`, `kind`, `low_share`, `mean_radius`,
#   `map_location`), and per kind
#   (`texture`, `object`) `<kind>_low_share`, `<kind>_mean_radius`,
#   `<kind>_mean_tpr`, as printed above.
