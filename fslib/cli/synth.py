"""``fslib synth``: generate a synthetic data set (Syn_1 to Syn_4 or a spec file) into a folder."""

from __future__ import annotations

import argparse
import sys

from .. import synthetic
from ..errors import InvalidInputError


def register(subparsers) -> None:
    """Add ``fslib synth``."""
    parser = subparsers.add_parser(
        "synth",
        help="generate a synthetic data set with a frequency bias",
        description="Generate the train and test splits of a synthetic data set and write train.npz, "
        "test.npz, spec.json and checksums.json to a folder. The presets syn1..syn4 are fslib's "
        "reconstruction of the paper's Syn_1..Syn_4, not the authors' recipe; --list shows their design.",
    )
    parser.add_argument("--preset", metavar="NAME",
                        help=f"preset to generate: one of {', '.join(synthetic.PRESETS)}")
    parser.add_argument("--spec", metavar="FILE.json",
                        help="JSON spec to generate instead of a preset (as written by SyntheticSpec.to_json "
                        "or found in a saved data set's spec.json)")
    parser.add_argument("--seed", type=int, default=0,
                        help="generation seed, a non-negative int; the same seed gives the same bytes (default: 0)")
    parser.add_argument("--out", metavar="DIR",
                        help="output folder; it must be new or empty, or hold a saved data set with --overwrite")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing saved data set in --out")
    parser.add_argument("--list", action="store_true",
                        help="print the presets with their design and expected outcome, then exit")

    def one_line_error(message: str) -> None:
        parser.exit(2, f"fslib synth: error: {message}\n")

    parser.error = one_line_error  # argparse's default prints the usage too
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Handle ``fslib synth``; return the exit code."""
    if args.list:
        print("\n\n".join(spec.describe() for spec in synthetic.PRESETS.values()))
        return 0
    if (args.preset is None) == (args.spec is None):
        raise InvalidInputError("Invalid options: pass exactly one of --preset NAME and --spec FILE.json, or --list.")
    if args.out is None:
        raise InvalidInputError("Missing --out DIR: name the folder to write the data set to.")

    spec = synthetic.get_preset(args.preset) if args.preset is not None else synthetic.SyntheticSpec.load(args.spec)
    try:
        out = synthetic.save_dataset(args.out, spec, seed=args.seed, overwrite=args.overwrite)
    except InvalidInputError as exc:
        raise InvalidInputError(_option_wording(str(exc))) from None
    print(f"wrote {spec.name} (seed {args.seed}, {spec.train_size} train / {spec.test_size} test images, "
          f"spec hash {spec.spec_hash()[:12]}) to {out}", file=sys.stdout)
    return 0


def _option_wording(message: str) -> str:
    """Name the command-line options in a message of :func:`fslib.synthetic.save_dataset`.

    The library message names its arguments (``out_dir``, ``seed``,
    ``overwrite=True``). A message in another form is returned unchanged.
    """
    message = message.replace("Invalid out_dir:", "Invalid --out:", 1).replace("Invalid seed:", "Invalid --seed:", 1)
    return message.replace("Pass overwrite=True (--overwrite on the command line) to replace it",
                           "Pass --overwrite to replace it", 1)
