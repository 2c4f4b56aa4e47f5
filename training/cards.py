"""Write full-validation results into the bundled weights cards.

``python -m colorcore evaluate --data VAL --models all --json results.json`` scores every bundled weights set
through the shared pipeline; this command copies each model's row (and the gray baseline on the same photos)
into ``NAME.json`` under ``evaluation`` and regenerates ``NAME.md``. The safetensors files are untouched, so
their sha256 stays valid.

    python -m training.cards results.json [--weights-dir assets/weights] [--default NAME ...]

``--default`` marks the named weights as defaults (listed first, so the studio pre-selects them) and
clears the mark on every other card.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from colorcore.io import atomic_write_text
from colorcore.weights import bundled_weights, weights_dir
from training.export import model_card_markdown


def update_cards(results_path: Path, folder: Path | None = None,
                 defaults: Sequence[str] | None = None) -> list[str]:
    """Add ``evaluation`` to every card named in the results (and set ``default`` marks when
    ``defaults`` is given); returns the updated weights names."""
    results = json.loads(Path(results_path).read_text())
    folder = Path(folder) if folder is not None else weights_dir()
    entries = bundled_weights(folder)
    unknown = sorted(set(defaults or ()) - {e.name for e in entries})
    if unknown:
        raise KeyError(f"no bundled weights named {', '.join(unknown)}")
    updated = []
    for entry in entries:
        # A two-head model has one row per named decode ("litecolor:faithful", "litecolor:vivid").
        decodes = {label.split(":", 1)[1]: r for label, r in results["models"].items()
                   if label.startswith(f"{entry.name}:")}
        row = results["models"].get(entry.name) or next(iter(decodes.values()), None)
        if row is None and defaults is None:
            continue
        card = dict(entry.card)
        if row is not None:
            card["evaluation"] = {
                "data": results["data"], "photos": results["photos"], "size": row["size"],
                "metrics": row["metrics"], "gray": results["gray"],
            }
            if decodes:
                card["evaluation"]["decodes"] = {d: r["metrics"] for d, r in decodes.items()}
        if defaults is not None:
            card["default"] = entry.name in defaults
        atomic_write_text(folder / f"{entry.name}.json", json.dumps(card, indent=2) + "\n")
        atomic_write_text(folder / f"{entry.name}.md", model_card_markdown(entry.name, card))
        updated.append(entry.name)
    return updated


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.cards", description=__doc__.split("\n")[0])
    p.add_argument("results", type=Path, help="JSON written by `python -m colorcore evaluate --json`")
    p.add_argument("--weights-dir", type=Path, default=None, help="default: assets/weights")
    p.add_argument("--default", nargs="+", default=None, metavar="NAME",
                   help="mark these weights as the studio's defaults (and no others)")
    args = p.parse_args(argv)
    try:
        names = update_cards(args.results, args.weights_dir, args.default)
    except (OSError, KeyError, json.JSONDecodeError) as exc:
        print(f"error: cannot update cards from {args.results}: {exc}", file=sys.stderr)
        return 1
    print(f"updated {len(names)} card(s): {', '.join(names) or 'none (no names matched)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
