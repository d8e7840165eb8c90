"""Background prefetch of a lazy SIF image: ``python -m neurodesk.store.sifprefetch IMAGE``.

Started detached by ``neurodesk install --lazy --prefetch``; its output goes to
``$NEURODESK_HOME/logs/prefetch-<id>.log``. Running commands are not interrupted: the image is
switched to the local file with one rename once the file is complete and verified.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from neurodesk.errors import NeurodeskError
from neurodesk.paths import Paths
from neurodesk.store.sifstore import prefetch
from neurodesk.store.store import ImageRecord, Store


def start(record: ImageRecord, paths: Paths) -> Path:
    """Start the prefetch of ``record`` in the background; returns its log file."""
    paths.logs.mkdir(parents=True, exist_ok=True)
    log = paths.logs / f"prefetch-{record.id}.log"
    with log.open("ab") as out:
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "neurodesk.store.sifprefetch",
                f"{record.name}/{record.version}/{record.builddate}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    return log


def main(argv: list[str]) -> int:
    paths = Paths.from_env()
    store = Store(paths.store)
    try:
        record = store.resolve(argv[0])
        prefetch(store, record)
    except NeurodeskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"prefetched {record.id}: now held as a local SIF", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
