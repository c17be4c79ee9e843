"""``napari-deblur pack``: a seeded bank of sharp crops (one .npz plus its JSON record) that
``napari-deblur train --sharp BANK.npz`` trains on elsewhere."""

from pathlib import Path

from .common import CLIError, positive_int


def add_pack(subparsers):
    """Add the ``pack`` parser."""
    parser = subparsers.add_parser(
        "pack",
        help="pack a seeded bank of sharp crops for training elsewhere (e.g. on a GPU machine)",
        description="Draw random square crops from sharp images (folders, files; the benchmark's held-out files "
        "left out) and write them as one compressed .npz plus OUT.json, the record of what went in. "
        "`napari-deblur train --sharp OUT.npz` trains on it.",
    )
    parser.add_argument("--sharp", nargs="+", required=True, metavar="DIR|FILE", help="sharp images")
    parser.add_argument("--preset", choices=["photo", "microscopy"], required=True)
    parser.add_argument("--crops", type=positive_int, default=160, help="number of crops (default 160)")
    parser.add_argument("--size", type=positive_int, default=256, help="crop side in pixels (default 256)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--psf",
        dest="psfs",
        nargs="+",
        default=None,
        metavar="TIFF",
        help="microscopy: PSF files whose slices travel in the bank (used by train --sharp BANK)",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="BANK.npz")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bank")
    parser.set_defaults(handler=run_pack)


def run_pack(args) -> int:
    """Write the crop bank and its record; returns 0."""
    from ..data.bank import pack_bank

    if args.out.exists() and not args.overwrite:
        raise CLIError(f"{args.out} already exists (use --overwrite to replace it)")
    record = pack_bank(
        args.sharp, args.preset, args.out, crops=args.crops, size=args.size, seed=args.seed, psfs=args.psfs
    )
    print(
        f"{args.out}: {record['crops']} crops of {record['size']} px from {len(record['files'])} files "
        f"({record['heldout_skipped'] and len(record['heldout_skipped'])} held-out files left out), "
        f"{record['bytes'] / 2**20:.1f} MiB; record in {args.out}.json"
    )
    return 0
