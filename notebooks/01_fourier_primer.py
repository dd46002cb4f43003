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
# (fourier-primer)=
# # A Fourier primer on real photographs
#
# Everything in this book is measured in the Fourier domain. This chapter
# shows, on photographs that ship with scikit-image and scikit-learn, what the
# spectrum of an image looks like, what its amplitude and phase carry, how the
# spectrum is cut into radial bands, what low-, high- and band-pass filtering do
# to an image, and why a frequency mask must be conjugate-symmetric. All
# computation is in `fslib.fourier`; spectra are shown **centred**, with the
# zero frequency in the middle.

# %%
import torch

from fslib import fourier
from fslib.book.notebook import (band_power_fractions, glue_figure, half_plane_mask, imaginary_residue,
                                 photographs, show_images, swap_amplitude_phase)
from fslib.book.store import chapter_dir, write_metrics
from fslib.plotting import set_style

set_style()

# %% tags=["parameters"]
photos = ["astronaut", "cat", "coffee", "flower", "brick", "grass"]  # names from fslib.datasets.PHOTO_CLASSES
image_size = 128  # side of the square each photograph is resized to, in pixels
n_bands = 4  # number of radial bands of equal width
cutoff = 8  # radius of the low- and high-pass filters, in cycles per image
artifacts_dir = None  # set by the build: where this chapter writes figures and metrics.json
upstream = None  # set by the build: folders of the chapters this one reads (none)

# %%
out = chapter_dir(artifacts_dir, "01_fourier_primer")
images = photographs(photos, image_size)  # (B, 3, S, S) in [0, 1]
print(f"{len(photos)} photographs, tensor of shape {tuple(images.shape)}")
glue_figure("primer_photos", show_images(images, photos, ncols=3), out)

# %% [markdown]
# ```{glue:figure} primer_photos
# :name: fig-primer-photos
#
# The photographs used in this chapter, centre-cropped and resized.
# ```
#
# The batch has the shape printed above: images are `(B, C, H, W)` tensors with
# values in [0, 1], the layout every function in `fslib` takes. The first
# photographs show objects; the last ones (brick, grass) are textures.
#
# ## The spectrum of a photograph
#
# The 2-D discrete Fourier transform writes an image as a sum of cosines. Each
# position `(u, v)` of the centred spectrum is a frequency: its distance from
# the centre is how many cycles the cosine makes across the image, its
# direction is the cosine's orientation. The log power `log |X|^2` makes the
# huge range of values visible.

# %%
log_power = fourier.log_power_spectrum(images).mean(dim=1)  # (B, S, S), averaged over RGB
print(f"log power ranges from {log_power.min().item():.1f} to {log_power.max().item():.1f}")
glue_figure("primer_spectra", show_images(log_power, photos, ncols=3, cmap="magma"), out)

# %% [markdown]
# ```{glue:figure} primer_spectra
# :name: fig-primer-spectra
#
# Log power spectra of the photographs in {numref}`fig-primer-photos`, centred:
# low frequencies in the middle, the highest at the border.
# ```
#
# Every spectrum in {numref}`fig-primer-spectra` is brightest in the centre and
# falls off towards the border: photographs put most of their power in low
# frequencies. The printed range is in natural-log units, so the strongest and
# weakest coefficients differ by many orders of magnitude in power (a
# difference of 10 is a factor of about 22,000). Bright lines through the centre come from straight edges and from the
# border of the image, which the DFT treats as periodic. The texture images
# keep more power at high frequencies, which is why their spectra look flatter;
# the next step puts numbers on this.
#
# ## How power splits into radial bands
#
# This book cuts the spectrum into radial bands, by default four rings of equal
# width, B1 (lowest) to B4 (highest). The paper's synthetic data sets place
# their frequency bias in one of four bands {cite}`wang2023frequency`, whose
# exact edges it does not state. `fourier.default_band_edges` returns the edges
# for an image size and `fourier.band_masks` the rings as masks.

# %%
edges = fourier.default_band_edges(image_size, n_bands)
masks = fourier.band_masks(image_size, edges)  # (n_bands, S, S)
fractions = band_power_fractions(images, edges)  # (B, n_bands)
print("band edges (cycles per image):", edges)
for name, row in zip(photos, fractions.tolist()):
    print(f"{name:>10}: " + "  ".join(f"B{i + 1} {share:6.1%}" for i, share in enumerate(row)))
band_titles = [f"B{i + 1}: [{edges[i]:g}, {edges[i + 1]:g})" for i in range(n_bands)]
glue_figure("primer_bands", show_images(masks, band_titles, cmap="gray"), out)
write_metrics(out, {"band_edges": [float(e) for e in edges],
                    "band_power_fractions": dict(zip(photos, fractions.tolist()))})

# %% [markdown]
# ```{glue:figure} primer_bands
# :name: fig-primer-bands
#
# The radial bands as masks (white: kept). A band `[r_inner, r_outer)` keeps
# its inner edge and drops its outer one; the last band reaches the corners.
# ```
#
# The table printed above gives each photograph's share of power (without the
# zero frequency) per band. For the object photographs the lowest band B1 contains
# the largest share by far, and B4, despite covering most of the spectrum's area
# in {numref}`fig-primer-bands`, contains the smallest. The textures (brick, grass)
# spread their power over several bands. This is the background against which later chapters ask which
# band a *network* relies on: not the band with the most power, but the one that
# best tells the classes apart.
#
# ## Amplitude and phase
#
# Each Fourier coefficient has an amplitude (how strong the cosine is) and a
# phase (where its crests lie). A classic experiment swaps them between two
# images.

# %%
first, second = images[:1], images[1:2]
hybrids = torch.cat([first, second, swap_amplitude_phase(first, second), swap_amplitude_phase(second, first)])
titles = [photos[0], photos[1], f"amplitude {photos[0]}\nphase {photos[1]}",
          f"amplitude {photos[1]}\nphase {photos[0]}"]
glue_figure("primer_swap", show_images(hybrids, titles), out)
error = (swap_amplitude_phase(first, first) - first).abs().max().item()
print(f"amplitude and phase of the same image give it back with max error {error:.1e}")

# %% [markdown]
# ```{glue:figure} primer_swap
# :name: fig-primer-swap
#
# Swapping amplitude and phase between two photographs. Each hybrid looks like
# the image whose **phase** it carries.
# ```
#
# In {numref}`fig-primer-swap` each hybrid shows the shapes of the image that
# gave it the phase; the amplitude only changes its contrast and colour cast.
# Phase places the edges; amplitude sets how much of each frequency there is. The printed round-off error checks that recombining an image's own
# amplitude and phase returns the image. Shape-based shortcuts (chapter 6)
# therefore live in the phase structure at the frequencies a network uses,
# texture-based ones in the amplitude at high frequencies.
#
# ## Low-, high- and band-pass filtering
#
# Filtering multiplies the spectrum by a mask and transforms back.
# `fourier.filter_images` does this for a batch and one mask or a stack of
# masks.

# %%
filters = torch.stack([
    fourier.low_pass_mask(image_size, cutoff),
    fourier.high_pass_mask(image_size, cutoff),
    fourier.band_pass_mask(image_size, edges, [1]),
    fourier.band_stop_mask(image_size, edges, [0]),
])  # (4, S, S)
filter_names = [f"low-pass r < {cutoff}", f"high-pass r >= {cutoff}", "band-pass B2", "band-stop B1"]
filtered = fourier.filter_images(images[:1], filters)[:, 0]  # (4, 3, S, S)
# High-pass results have zero mean: shift them to mid-grey to show them.
shown = torch.stack([filtered[0], filtered[1] + 0.5, filtered[2] + 0.5, filtered[3] + 0.5])
glue_figure("primer_filters", show_images(shown, filter_names), out)
energy = (filtered.square().sum(dim=(1, 2, 3)) / images[0].square().sum()).tolist()
for name, share in zip(filter_names, energy):
    print(f"{name:>18}: {share:6.1%} of the image's energy")

# %% [markdown]
# ```{glue:figure} primer_filters
# :name: fig-primer-filters
#
# The first photograph filtered four ways; results without the zero frequency
# are shifted to mid-grey for display.
# ```
#
# The low-pass image in {numref}`fig-primer-filters` keeps the layout and the
# colours but loses every edge; the high-pass image keeps only edges and fine
# texture. The energies printed above (including the mean intensity, which
# only the low-pass filter keeps) show how unequal the split is: nearly all of
# the energy passes the low-pass filter, yet the high-pass image is still easy to
# recognise. A network can therefore classify from frequencies that carry very
# little energy, which is what makes high-frequency shortcuts possible.
#
# ## Conjugate symmetry
#
# The spectrum of a real image satisfies `X(-k) = conj(X(k))`. A mask keeps the
# result real only if it treats `k` and `-k` alike. `fslib` builds symmetric
# masks; a mask from elsewhere can be checked and repaired.

# %%
half = half_plane_mask(image_size)
repaired = fourier.symmetrize(half, mode="mean")
for label, mask in [("band-pass B2", filters[2]), ("right half-plane", half), ("half-plane, symmetrised", repaired)]:
    print(f"{label:>24}: symmetric={fourier.is_conjugate_symmetric(mask)!s:5}  "
          f"relative imaginary part {imaginary_residue(images[:1], mask):.1e}")

# %% [markdown]
# The band-pass mask is symmetric and the inverse transform is real up to
# round-off (the relative imaginary part printed above is at the level of
# float64 precision). Keeping only the right half-plane is not symmetric, and
# the inverse transform gets an imaginary part of the same order as the real
# one: such a mask describes no real filter. `fourier.symmetrize` averages the
# mask with its mirror, which restores a real result. `fourier.filter_images`
# returns the real part, which equals filtering with the symmetrised mask.
#
# ```{admonition} Paper
# :class: note
# The paper removes each frequency together with its conjugate mirror when it
# searches for dominant frequencies {cite}`wang2023frequency`. This book does
# the same through `fourier.patch_mask` and `fourier.symmetrize`; the primer's
# filters are built symmetric from the start.
# ```
#
# ## Exercises
#
# 1. Swap amplitude and phase between a texture (brick) and an object
#    photograph. Does the hybrid still follow the phase?
# 2. Which band has the most power for `grass`, and how does its share
#    change at `image_size = 64`?
# 3. Build a mask that keeps one frequency `(u, v)` only. What image does it
#    produce, and why must its mirror be kept too?
#
# ```{admonition} Solution 1
# :class: dropdown
# Run `swap_amplitude_phase(images[4:5], images[0:1])`. The hybrid keeps the
# outline of the phase donor; the texture's amplitude, flatter across
# frequencies, only adds a fine grain. Phase dominates for textures as well.
# ```
#
# ```{admonition} Solution 2
# :class: dropdown
# Read the grass row of the band table above. A texture has no single
# dominant band the way an object photograph has B1: its power is spread over
# B1 to B3. Rerun with `fslib run notebooks/01_fourier_primer.py -p image_size 64`:
# the band edges halve with the image size while the grain of the texture keeps
# its frequency in cycles per image, so its power moves towards higher bands.
# ```
#
# ```{admonition} Solution 3
# :class: dropdown
# `fourier.patch_mask(image_size, row, col)` keeps the cell and its mirror.
# The result is a single cosine grating oriented along `(u, v)`. Without the
# mirror, the inverse transform is a complex exponential, whose real part is
# the same grating at half the amplitude, as `filter_images` returns.
# ```
#
# ## Summary
#
# - Photographs put most of their power in the lowest band; the spectrum of a
#   texture is flatter ({numref}`fig-primer-spectra`).
# - Phase carries the structure of an image, amplitude its frequency content
#   ({numref}`fig-primer-swap`).
# - Bands, low-, high- and band-pass masks come from `fslib.fourier` and keep
#   the result real because they are conjugate-symmetric.
# - A frequency that carries little energy can still identify an image, which
#   is where frequency shortcuts come from. {ref}`synthetic-data` builds data
#   sets where that frequency is placed on purpose.
