"""python -m egotwin.data.nymeria SEQ_DIR [SEQ_DIR ...] --output_dir DIR [--motion_only true] ... (docs/nymeria.md)"""

from __future__ import annotations

import json

from egotwin.config import parse_config
from egotwin.data.nymeria.convert import NymeriaConfig, convert


def main(argv: list[str] | None = None) -> None:
    config = parse_config(NymeriaConfig, argv, prog="python -m egotwin.data.nymeria")
    report = convert(config)
    summary = {k: report[k] for k in ("clips_written", "clips_dropped", "sequences_converted", "sequences_skipped")}
    print(json.dumps(summary))
    for name, error in report["errors"].items():
        print(f"skipped {name}: {error}")


if __name__ == "__main__":
    main()
