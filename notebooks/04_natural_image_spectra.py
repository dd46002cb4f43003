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
# (natural-image-spectra)=
# # Class-wise frequency characteristics of natural images
#
# Before asking which frequencies a trained network relies on, this chapter
# asks which frequencies make each class of a natural-image data set
# different from the others. It computes the class-average amplitude spectra
# and the ADCS map of every class, counts per radial band how many
# frequencies are distinctive for a class, and compares texture-like with
# object-like classes. The default data are crops of the photographs that
# scikit-image and scikit-learn ship; the paper's data (ImageNet-10,
# CIFAR-10) load from local folders.

# %%
import torch
from torch.utils.data import DataLoader

from fslib import fourier, metrics
from fslib.book import dfm_chapter
from fslib.book.notebook import glue_figure, show_images
from fslib.book.store import chapter_dir, write_metrics
from fslib.plotting import set_style

set_style()

# %% tags=["parameters"]
data = "photos"  # data set: "photos" (embedded photographs), "imagenet10" or "cifar10"
image_size = 32  # image side in pixels (photos and ImageNet-10; CIFAR-10 is always 32)
crops_per_class = 200  # photo crops per class of the training split used for the spectra
seed = 0  # crop seed of the photo set
n_bands = 4  # radial bands B1 (lowest) to Bn (highest) for the per-band counts
focus = None  # class whose per-channel ADCS is shown (None: the first class)
batch_size = 256  # images per FFT batch
threads = 1  # torch CPU threads (small FFT batches gain little from more)
imagenet10_dir = None  # ImageNet-10 folder with train/ and val/, needed when data is "imagenet10"
cifar10_dir = None  # folder with cifar-10-batches-py/, needed when data is "cifar10"
artifacts_dir = None  # set by the build: where this chapter writes figures and metrics.json
upstream = None  # set by the build: folders of the chapters this one reads (none)

# %%
torch.set_num_threads(threads)
out = chapter_dir(artifacts_dir, "04_natural_image_spectra")
spec = dfm_chapter.natural_data_spec(data, size=image_size, seed=seed, train_per_class=crops_per_class,
                                     imagenet10_dir=imagenet10_dir, cifar10_dir=cifar10_dir)
train = dfm_chapter.natural_dataset(spec, "train")
classes = list(train.classes)
num_classes = len(classes)
kinds = dfm_chapter.photo_kinds(classes)
focus_class = classes[0] if focus is None else focus
if focus_class not in classes:
    raise ValueError(f"Invalid focus {focus!r}: expected None or one of the classes {classes}.")
print(f"data: {spec}")
print(f"{len(train)} training images of {num_classes} classes")

# %% [markdown]
# ## The classes
#
# One training image per class. For the embedded photographs each class is
# one photograph, and its kind (texture or object) shows whether a crop shows
# a stationary pattern or part of one subject.

# %%
examples, example_labels = dfm_chapter.class_images(train, per_class=1)  # (K, 3, H, W), (K,)
titles = [f"{classes[int(k)]} ({kinds[classes[int(k)]]})" if kinds else classes[int(k)] for k in example_labels]
glue_figure("spectra_examples", show_images(examples, titles, ncols=5, size=1.9), out)

# %% [markdown]
# ```{glue:figure} spectra_examples
# :name: fig-spectra-examples
#
# One training image of each class, with its kind when the class is one of
# the embedded photographs.
# ```
#
# ## Class-average amplitude spectra

# %%
if hasattr(train, "images"):
    spectra = metrics.class_average_spectra(train.images, train.labels, num_classes, batch_size=batch_size)
else:
    loader = DataLoader(train, batch_size=batch_size)
    spectra = metrics.class_average_spectra(loader, num_classes=num_classes)
spectra = spectra.cpu()  # (K, C, H, W) float64, centred
glue_figure("spectra_class_average", metrics.plot_class_spectra(spectra, class_names=classes), out)
print(f"class-average spectra: shape {tuple(spectra.shape)}")

# %% [markdown]
# ```{glue:figure} spectra_class_average
# :name: fig-spectra-class-average
#
# Mean amplitude spectrum of each class (log scale, channels averaged), zero
# frequency at the centre; the axes give the frequency in cycles per image.
# ```
#
# Every natural class has most of its amplitude at low frequencies, so the
# spectra in {numref}`fig-spectra-class-average` look alike at first sight:
# bright at the centre and fading outwards. They differ in how fast they fade
# and in oriented streaks (edges and stripes of a preferred direction). Those
# differences are small next to the common fall-off, which is why a measure
# that compares classes frequency by frequency is needed.
#
# ## ADCS: where a class differs from the others
#
# ```{admonition} Paper
# :class: note
# The paper defines a class-wise metric that exposes the distinctive
# frequencies of each class {cite}`wang2023frequency` [paper]. In the form
# summarised by others and matching the official code [summary], with `E_c`
# the mean amplitude spectrum of class `c` and `K` classes,
# `ADCS_c(u, v) = sum over j != c of sign(E_c(u, v) - E_j(u, v))`, an integer
# from `1 - K` to `K - 1`. The official code combines the colour channels into
# one difference before the sign [summary]. fslib does that by summing the
# channel spectra (`per_channel=False`, used below) and also offers the
# per-channel variant (`per_channel=True`), shown at the end of this chapter.
# Whether the official code sums channel amplitudes or transforms
# grey-converted images was not checked.
# ```

# %%
adcs_maps = metrics.adcs_from_spectra(spectra)  # (K, H, W) int64
glue_figure("spectra_adcs", metrics.plot_adcs(adcs_maps, classes), out)
print(f"ADCS range: {int(adcs_maps.min())} to {int(adcs_maps.max())} (bounds {1 - num_classes} to {num_classes - 1})")

# %% [markdown]
# ```{glue:figure} spectra_adcs
# :name: fig-spectra-adcs
#
# ADCS of each class: red where the class has more mean amplitude than most
# other classes, blue where it has less.
# ```
#
# The printed range stays inside the bounds `1 - K` and `K - 1`. A class whose
# map in {numref}`fig-spectra-adcs` is red at the rim has more fine detail than
# the others; red near the centre with blue at the rim marks a class of smooth
# images; a red line through the centre marks stripes or edges of one
# orientation, which put their energy on the line perpendicular to them.
#
# Lines along the two axes need care. The DFT treats a crop as periodic, so
# the jump between its left and right edges (and between top and bottom)
# adds energy along the horizontal (and vertical) axis of the spectrum,
# whatever the crop shows. A class whose crops have large such jumps scores
# high on the axes for that reason alone. No window is applied here, because
# the definition above has none.
#
# ## Distinctive bands per class
#
# The spectrum is split into `n_bands` rings of equal width, B1 the lowest.
# For each class and ring the table gives the share of the ring's frequencies
# with a positive ADCS, that is frequencies where the class has more amplitude
# than more than half of the other classes. The zero frequency (the mean
# brightness) is left out. The last column names the ring with the largest
# share, or `none` when the class's shares differ by less than 0.05 between
# rings, so that no ring is distinctive.

# %%
edges = fourier.default_band_edges(spectra.shape[-2:], n_bands)
shares = dfm_chapter.adcs_band_shares(adcs_maps, edges)  # (K, n_bands)
band_names = [f"B{b + 1}" for b in range(n_bands)]
table = dfm_chapter.band_table(shares, classes, band_names, kinds)
print(f"band edges (radius in frequency-index units): {edges}")
print(table.round(2).to_string())
glue_figure("spectra_band_shares", dfm_chapter.plot_band_shares(shares, classes, kinds, band_names), out)

# %% [markdown]
# ```{glue:figure} spectra_band_shares
# :name: fig-spectra-band-shares
#
# Share of each band's frequencies where a class's ADCS is positive; one line
# per class, orange for texture-like and blue for object-like photographs.
# ```
#
# A share near 1 means that the class carries more amplitude than most others
# almost everywhere in that band; near 0, almost nowhere. The column
# `most_distinctive` in the table above is the band where each class is most
# distinctive. That band is the candidate for what the paper expects a network
# to pick up first. {numref}`fig-spectra-band-shares` shows whether the classes
# split into groups.
#
# ## Texture-like against object-like classes

# %%
if kinds is not None:
    by_kind = table.groupby("kind")[band_names].mean()
    print("mean share of positive ADCS per band, by kind:")
    print(by_kind.round(2).to_string())
    print("most distinctive band by kind:")
    print(table.groupby("kind")["most_distinctive"].value_counts().to_string())
else:
    by_kind = None
    print("The classes of this data set have no texture or object label, so there is no comparison by kind.")

# %% [markdown]
# The first table averages the band shares over the classes of each kind; the
# second counts the classes of each kind by their most distinctive band.
# Texture photographs (brick, grass, gravel, a tissue stain) are stationary
# patterns of small elements, so they can be expected to stand out at high
# frequencies, while object photographs show smooth surfaces with a few edges
# and stand out at low frequencies or along edge orientations. The tables say
# how far this holds here. Because every class is a single photograph, what a
# class "is distinctive in" is a property of that photograph and of the crop
# size, not of a category in general.
#
# ```{admonition} Caveat
# :class: caution
# ADCS counts signs, not magnitudes: a frequency where a class has 1% more
# amplitude than another counts as much as one where it has ten times more.
# A positive share therefore says where a class is consistently stronger, not
# by how much. ADCS also compares raw amplitudes: a class whose images have
# more contrast overall has more amplitude at nearly every frequency, so its
# shares are near 1 in every band, and a class of low-contrast images has
# shares near 0 everywhere. For such classes the table reflects contrast more
# than frequency content; dividing each image's spectrum by its total
# amplitude would separate the two, which the paper's definition does not do.
# With one photograph per class, some classes are also alike (the three grey
# textures), which pulls their ADCS towards zero against each other.
# ```
#
# ## Per-channel ADCS

# %%
per_channel = metrics.adcs_from_spectra(spectra, per_channel=True)  # (K, C, H, W)
agreement = (torch.sign(per_channel) == torch.sign(adcs_maps)[:, None]).double().mean(dim=(0, 2, 3))  # (C,)
channel_names = ["red", "green", "blue"][:per_channel.shape[1]]
for name, value in zip(channel_names, agreement.tolist()):
    print(f"{name}: per-channel ADCS has the sign of the combined ADCS at {100 * value:.1f}% of the frequencies")
index = classes.index(focus_class)
panels = torch.cat([adcs_maps[index:index + 1], per_channel[index]])  # (1 + C, H, W)
fig = metrics.plot_class_maps(panels, titles=["channels combined"] + [f"{name} only" for name in channel_names],
                              cmap="RdBu_r", vmin=1 - num_classes, vmax=num_classes - 1, colorbar_label="ADCS",
                              ncols=len(panels))
glue_figure("spectra_per_channel", fig, out)
print(f"class shown: {focus_class}")

# %% [markdown]
# ```{glue:figure} spectra_per_channel
# :name: fig-spectra-per-channel
#
# ADCS of the class `focus` with the channels combined before the sign (left)
# and per channel.
# ```
#
# Where all channels of the classes move together, the per-channel maps repeat
# the combined one; the printed agreement measures how often that is the case.
# Disagreement comes from colour. A class that is redder than another has a
# positive difference in the red channel and a negative one in the blue
# channel at the same frequency, and the combined difference keeps only the
# larger of the two.

# %%
write_metrics(out, {
    "data": spec["source"],
    "image_size": int(spectra.shape[-1]),
    "num_classes": num_classes,
    "classes": classes,
    "train_images": len(train),
    "band_edges": [float(e) for e in edges],
    "adcs_positive_share": {name: [float(v) for v in row] for name, row in zip(classes, shares.tolist())},
    "most_distinctive_band": dict(zip(classes, table["most_distinctive"].tolist())),
    "kind_mean_positive_share": ({kind: [float(v) for v in row] for kind, row in zip(by_kind.index, by_kind.values)}
                                 if by_kind is not None else None),
    "channel_sign_agreement": dict(zip(channel_names, (float(v) for v in agreement))),
})
keys = {
    "data, image_size, num_classes, classes, train_images": "the data the spectra come from",
    "band_edges": "radial band edges in frequency-index units",
    "adcs_positive_share": "per class, share of each band's frequencies with ADCS > 0",
    "most_distinctive_band": "per class, the band with the largest share",
    "kind_mean_positive_share": "per kind (texture, object), the mean share per band; null without kinds",
    "channel_sign_agreement": "per channel, share of frequencies where the per-channel ADCS has the combined sign",
}
for key, meaning in keys.items():
    print(f"{key:55s} {meaning}")

# %% [markdown]
# ## Summary
#
# - Class-average spectra of natural images share a steep fall-off from low
#   to high frequencies ({numref}`fig-spectra-class-average`); ADCS removes
#   that common part and shows where each class is stronger than the others
#   ({numref}`fig-spectra-adcs`).
# - The per-band shares ({numref}`fig-spectra-band-shares`) name each class's
#   most distinctive band, which can be low or high, and the comparison by
#   kind shows whether texture-like and object-like photographs differ in it.
# - Combining the channels before the sign, as the official code does, agrees
#   with the per-channel maps at most frequencies; the rest is colour
#   ({numref}`fig-spectra-per-channel`).
# - The metrics above go to `metrics.json`; the chapter on dominant frequency
#   maps tests whether a trained network relies on these bands.
