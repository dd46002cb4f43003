"""``fslib dfm inspect``: describe, draw and convert a dominant frequency map file."""

from __future__ import annotations

import argparse

from ..errors import InvalidInputError

_SYMMETRIZE_CHOICES = ("none", "union", "intersection")


def register(subparsers) -> None:
    """Add ``fslib dfm inspect``."""
    parser = subparsers.add_parser(
        "inspect",
        help="print the share kept and the conjugate symmetry of each map; draw or convert the file",
        description="Read a DFM file (fslib .npz, or the .pkl format of the published DFM-X maps) and print, per class, the share "
        "of the spectrum kept (percent) and whether the map is conjugate-symmetric. Optionally "
        "symmetrise the maps, draw them, or write them in the other format.",
    )
    parser.add_argument("file", help="DFM file: fslib .npz, or .pkl in the authors' format (dict of class index to map)")
    parser.add_argument("--plot", metavar="OUT.png", help="draw the maps, one panel per class, into this image")
    parser.add_argument("--symmetrize", choices=_SYMMETRIZE_CHOICES, default="none",
                        help="make each map conjugate-symmetric before --plot and --convert: 'union' keeps a "
                        "frequency if it or its mirror is kept, 'intersection' only if both are (default: none)")
    parser.add_argument("--convert", metavar="OUT", help="write the maps to this file (.npz for fslib, .pkl for authors)")
    parser.add_argument("--format", choices=("fslib", "authors"), default="fslib",
                        help="format of the --convert output (default: fslib)")
    parser.add_argument("--classes", metavar="NAMES",
                        help="comma-separated class names, one per map, used in the output and stored by --convert")
    parser.set_defaults(func=run)


def _format_table(rows: list[dict], names: list[str], after: list[dict] | None) -> str:
    header = f"{'class':>5}  {'name':<16} {'kept_%':>7}  {'symmetric':<9}  {'asymmetric_positions':>20}"
    if after is not None:
        header += f"  {'kept_%_symmetrized':>18}"
    lines = [header]
    for index, row in enumerate(rows):
        line = (f"{index:>5}  {names[index][:16]:<16} {row['kept_percent']:>7.2f}  "
                f"{'yes' if row['conjugate_symmetric'] else 'no':<9}  {row['asymmetric_positions']:>20d}")
        if after is not None:
            line += f"  {after[index]['kept_percent']:>18.2f}"
        lines.append(line)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the summary of a DFM file and apply --symmetrize, --plot and --convert."""
    from ..dfm.io import load_dfm, map_summary, plot_dfm, save_dfm
    from ..fourier import symmetrize

    dfm = load_dfm(args.file)
    names = dfm.classes
    if args.classes is not None:
        names = [name.strip() for name in args.classes.split(",")]
        if len(names) != dfm.num_classes:
            raise InvalidInputError(
                f"Invalid --classes: got {len(names)} names for {dfm.num_classes} maps. Give one name per map."
            )

    height, width = dfm.maps.shape[1:]
    print(f"{args.file}: {dfm.format} format, {dfm.num_classes} maps of {height}x{width}, centred layout")
    rows = map_summary(dfm.maps)
    maps = dfm.maps
    after = None
    if args.symmetrize != "none":
        maps = symmetrize(maps, args.symmetrize)
        after = map_summary(maps)
    print(_format_table(rows, names, after))
    asymmetric = sum(not row["conjugate_symmetric"] for row in rows)
    if asymmetric and args.symmetrize == "none":
        print(f"{asymmetric} of {len(rows)} maps are not conjugate-symmetric, so they do not describe real "
              "filters; --symmetrize union or intersection makes them symmetric.")

    if args.plot:
        from ..plotting import save_figure, set_style

        set_style()
        fig = plot_dfm(maps, names)
        save_figure(fig, args.plot)
        print(f"wrote figure {args.plot}")

    if args.convert:
        header = {}
        if args.format == "fslib":
            header = {key: value for key, value in dfm.header.items()
                      if key in ("patch_size", "top_percent", "model", "data", "extra")}
            header["classes"] = names
            if args.symmetrize != "none":
                header["extra"] = {**(header.get("extra") or {}), "symmetrized": args.symmetrize}
        save_dfm(maps, args.convert, format=args.format, **header)
        print(f"wrote {args.format} file {args.convert}")
    return 0
