"""Measure the throughput of fslib.fourier.filter_images against a bare torch.fft round trip.

For each case (image size, number of masks, batch size) the script times

- fslib: ``filter_images(images, masks)``, and
- baseline: ``ifft2(fft2(images)[None] * ifftshift(masks)[:, None, None]).real``
  on the same tensors, without chunking,

and prints images per second for both and their ratio, baseline time over
fslib time. A ratio of 1 or more means that fslib is as fast or faster.
With 64 masks, one image counts once although it is filtered 64 times.
Each timing is the median of several repeats after a warm-up call. Run it
with::

    .venv/bin/python bench/bench_filter.py [--device cpu|cuda] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from fslib.fourier import filter_images

#: (height and width, number of masks, batch size). The batch sizes keep one
#: full run on a 2-core CPU under about a minute.
CPU_CASES = [(32, 1, 512), (32, 64, 64), (224, 1, 32), (224, 64, 2)]
#: Larger batches for a GPU, where small ones measure launch overhead only.
#: NOTE: these sizes are estimates; the script has not yet been run on a GPU.
CUDA_CASES = [(32, 1, 4096), (32, 64, 512), (224, 1, 256), (224, 64, 32)]


def baseline_filter(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Filter ``(B, C, H, W)`` images with ``(M, H, W)`` centred masks by a complex FFT round trip."""
    spectrum = torch.fft.fft2(images)  # (B, C, H, W) complex
    unshifted = torch.fft.ifftshift(masks, dim=(-2, -1))  # (M, H, W)
    return torch.fft.ifft2(spectrum[None] * unshifted[:, None, None]).real  # (M, B, C, H, W)


def median_seconds(functions, device: torch.device, repeats: int) -> list[float]:
    """Return the median wall time of each function over ``repeats`` calls, after one warm-up call each.

    The functions run in turn within each repeat, so a change in the load
    of the machine during the run affects all of them alike.
    """
    for function in functions:
        function()
    times = [[] for _ in functions]
    for _ in range(repeats):
        for function, samples in zip(functions, times):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            function()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            samples.append(time.perf_counter() - start)
    return [statistics.median(samples) for samples in times]


def run_case(size: int, n_masks: int, batch: int, device: torch.device, repeats: int) -> dict:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, size, size, generator=generator).to(device)  # (B, 3, H, W)
    masks = torch.rand(n_masks, size, size, generator=generator).to(device)  # (M, H, W)

    # Both paths must give the same numbers before their speed means anything.
    expected = baseline_filter(images, masks)
    result = filter_images(images, masks)
    if not torch.allclose(result, expected, atol=1e-4, rtol=1e-4):
        raise RuntimeError(f"filter_images and the baseline differ for size {size}, {n_masks} masks.")
    del expected, result

    fslib_seconds, baseline_seconds = median_seconds(
        [lambda: filter_images(images, masks), lambda: baseline_filter(images, masks)], device, repeats
    )
    return {
        "size": size,
        "masks": n_masks,
        "batch": batch,
        "fslib": batch / fslib_seconds,
        "baseline": batch / baseline_seconds,
        "ratio": baseline_seconds / fslib_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="device to run on (default: cuda when available, else cpu)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (default: 5)")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"invalid --repeats {args.repeats}: expected at least 1")
    device = torch.device(args.device)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"device {device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"float32, 3 channels, median of {args.repeats} calls, load average {load}")
    print(f"{'size':>9} {'masks':>5} {'batch':>5} {'fslib img/s':>12} {'baseline img/s':>15} {'ratio':>6}")

    cases = CUDA_CASES if device.type == "cuda" else CPU_CASES
    start = time.perf_counter()
    for size, n_masks, batch in cases:
        row = run_case(size, n_masks, batch, device, args.repeats)
        print(f"{size:>4}x{size:<4} {row['masks']:>5} {row['batch']:>5} {row['fslib']:>12.1f} "
              f"{row['baseline']:>15.1f} {row['ratio']:>6.2f}", flush=True)
    print(f"total {time.perf_counter() - start:.1f} s; ratio = baseline time / fslib time (>= 1: fslib as fast or faster)")


if __name__ == "__main__":
    main()
