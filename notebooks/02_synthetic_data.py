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
# (synthetic-data)=
# # Synthetic data sets with a designed frequency bias
#
# The first experiments of the paper {cite}`wang2023frequency` use four
# synthetic data sets, Syn_1 to Syn_4, of four classes of 32x32 RGB images.
# Each class is made of class-specific "special" frequencies, and the data set
# names and published summaries place the bias of Syn_b in band B_b. This chapter shows fslib's four
# presets `syn1` to `syn4`: samples of every class, their class-average
# spectra, the ADCS map of each class, and the band that was designed to be
# each class's most distinctive characteristic, stated at the end
# ({ref}`synthetic-data-expectation`) as an expectation for training.

# %%
import dataclasses

import torch

from fslib import metrics, synthetic
from fslib.book.notebook import glue_figure, show_images
from fslib.book.store import chapter_dir, write_metrics
from fslib.plotting import set_style

set_style()

# %% tags=["parameters"]
presets = ["syn1", "syn2", "syn3", "syn4"]  # fslib presets to show
train_size = 2000  # training images generated per preset (balanced over the classes)
seed = 0  # generation seed
focus = "syn4"  # preset shown in detail (class-average spectra)
artifacts_dir = None  # set by the build: where this chapter writes figures, specs and metrics.json
upstream = None  # set by the build: folders of the chapters this one reads (none)

# %%
out = chapter_dir(artifacts_dir, "02_synthetic_data")
specs = {name: dataclasses.replace(synthetic.get_preset(name), train_size=train_size) for name in presets}
if focus not in specs:
    raise ValueError(f"Invalid focus {focus!r}: expected one of the presets shown, {presets}.")
for name, spec in specs.items():
    (out / f"{name}.spec.json").write_text(spec.to_json())
print(specs[presets[0]].describe())

# %% [markdown]
# ```{admonition} Paper
# :class: note
# The paper publishes Syn_1 to Syn_4 as files, not as a generator, and does not
# state how many special frequencies each class has, where they sit, their
# amplitudes or the band edges {cite}`wang2023frequency`. fslib's presets are a
# **reconstruction** from the stated principle (class-specific frequencies,
# bias of Syn_b in band B_b). `fslib.synthetic.load_authors_dataset` reads the
# authors' files when you have them.
# ```
#
# The printout above is the design of the first preset: the image size, the
# band edges, the data set size, and per class the special frequencies: how
# many, in which band, with which amplitude. Every class of `syn{b}` has its
# primary special frequencies in band B{b}; one *designated* class has more and
# stronger ones there, and each class has a weaker secondary group in another
# band. Distractor cosines at random frequencies and pixel noise are the same
# for every class, so they carry no label information.
#
# ## Samples of every class

# %%
samples, titles = [], []
for name, spec in specs.items():
    images, labels = synthetic.make_dataset(spec, "train", seed=seed)  # (N, 3, 32, 32), (N,)
    for label in range(spec.num_classes):
        samples.append(images[labels == label][0])
        titles.append(f"{name}, class {label}")
    counts = torch.bincount(labels, minlength=spec.num_classes).tolist()
    print(f"{name}: {tuple(images.shape)}, images per class {counts}, "
          f"pixel range [{images.min():.2f}, {images.max():.2f}]")
glue_figure("synthetic_samples", show_images(torch.stack(samples), titles, ncols=4, size=1.8), out)

# %% [markdown]
# ```{glue:figure} synthetic_samples
# :name: fig-synthetic-samples
#
# One training image per class (columns) of each preset (rows).
# ```
#
# The counts printed above confirm balanced classes. The images in
# {numref}`fig-synthetic-samples` are mixtures of gratings: in `syn1` and `syn2`
# they vary slowly, in `syn3` and `syn4` they are fine-grained. Telling the
# classes apart by eye is hard, which is the point: the label lives in a few
# frequencies, not in any shape.
#
# ## Class-average spectra

# %%
focus_spec = specs[focus]
images, labels = synthetic.make_dataset(focus_spec, "train", seed=seed)
spectra = metrics.class_average_spectra(images, labels, focus_spec.num_classes, device="cpu")  # (K, 3, H, W)
fig = metrics.plot_class_spectra(spectra, class_names=focus_spec.class_names)
glue_figure("synthetic_spectra", fig, out)
print(f"{focus}: class-average spectra of shape {tuple(spectra.shape)}")

# %% [markdown]
# ```{glue:figure} synthetic_spectra
# :name: fig-synthetic-spectra
#
# Class-average amplitude spectra (log scale) of the preset `focus`, centred.
# ```
#
# Averaging over many images of a class cancels the distractors, which sit at
# random positions, and leaves the class's special frequencies as isolated
# bright dots, each with its mirror through the centre, in
# {numref}`fig-synthetic-spectra`.
#
# ## ADCS: where a class differs from the others
#
# ADCS (accumulated difference of class-wise average spectra) scores every
# frequency of class `c` by `sum over j != c of sign(E_c - E_j)`, from `1 - K`
# to `K - 1` (here -3 to 3): it is high where the class has more amplitude than
# every other class.

# %%
table = {}
for name, spec in specs.items():
    images, labels = synthetic.make_dataset(spec, "train", seed=seed)
    maps = metrics.adcs(images, labels, spec.num_classes, device="cpu").float()  # (K, H, W)
    own = synthetic.special_frequency_masks(spec)  # (K, H, W)
    at_own = ((maps * own).sum(dim=(1, 2)) / own.sum(dim=(1, 2))).tolist()
    table[name] = {"adcs_at_own_special_frequencies": at_own,
                   "designed_most_distinctive_band": [f"B{b + 1}" for b in spec.most_distinctive_bands()],
                   "expected_outcome": spec.expected_outcome()}
    print(f"{name}: mean ADCS at each class's own special frequencies: "
          + ", ".join(f"{value:+.2f}" for value in at_own))
    if name == focus:
        glue_figure("synthetic_adcs", metrics.plot_adcs(maps, spec.class_names), out)
write_metrics(out, {"presets": table, "train_size": train_size, "seed": seed})

# %% [markdown]
# ```{glue:figure} synthetic_adcs
# :name: fig-synthetic-adcs
#
# ADCS of each class of the preset `focus`: red where the class has more
# amplitude than the others, blue where it has less.
# ```
#
# The printed means are close to the maximum, 3, when each class's own special
# frequencies stand out against all three other classes; lower values mean
# that sampling noise or clipping blurs some of them at this data set size.
# {numref}`fig-synthetic-adcs` shows the same as red dots at the special
# frequencies of each class.
#
# (synthetic-data-expectation)=
# ## The designed most distinctive band: an expectation for training

# %%
for name, spec in specs.items():
    outcome = spec.expected_outcome()
    height = "high" if outcome["high_frequency"] else "low"
    designed = table[name]["designed_most_distinctive_band"]
    bands = ", ".join(f"class {c}: {band}" for c, band in enumerate(designed))
    print(f"{name}: most distinctive band per class ({bands}); designated class {outcome['class_index']} "
          f"in {outcome['band']} ({height} frequency)")

# %% [markdown]
# For every preset the designed statistic (`SyntheticSpec.band_distinctiveness`)
# puts each class's most distinctive characteristic in the preset's bias band,
# and the designated class has the strongest one. The paper's first claim then
# predicts what a network learns first: the designated class, through its
# special frequencies in that band, whether the band is low (`syn1`, `syn2`) or
# high (`syn3`, `syn4`). The learning-dynamics chapter checks this with
# band-stop test sets early in training.
#
# ```{admonition} Paper
# :class: note
# The paper's central claim is that what a network learns first is the most
# distinctive frequency characteristic of a class, low or high
# {cite}`wang2023frequency`. Summaries of its synthetic-data results (not
# checked against the paper's figures here) add that ResNet18 learns one class
# first even when that class's special frequencies are high, and that another
# class keeps its accuracy when bands are removed, a sign of a frequency
# shortcut. This book states the expectation above from fslib's own presets;
# the numbers it gets are in the later chapters.
# ```
#
# ## Summary
#
# - fslib's `syn1` to `syn4` are a reconstruction of the paper's Syn_1 to Syn_4:
#   four classes of 32x32 RGB images, each class defined by special frequencies
#   in the preset's bias band ({numref}`fig-synthetic-samples`).
# - Class-average spectra and ADCS recover those frequencies from the images
#   ({numref}`fig-synthetic-spectra`, {numref}`fig-synthetic-adcs`), which is
#   what ADCS does on natural images later.
# - The specs are saved as `<preset>.spec.json` in this chapter's artifact
#   folder, so later chapters regenerate exactly these data sets.
