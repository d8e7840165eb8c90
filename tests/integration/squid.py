"""A real squid caching proxy on 127.0.0.1 (ephemeral port), memory cache only.

SIF files are immutable by name (the id holds the build date), so the configuration keeps
``*.simg``/``*.sif`` for a week without asking the origin again, and answers Range requests
from the whole cached object (``range_offset_limit -1``): the README shows the same settings.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.integration.distribution_helpers import free_port

CONFIG = """\
http_port 127.0.0.1:{port}
http_access allow localhost
http_access deny all
cache_mem 256 MB
maximum_object_size_in_memory 512 MB
maximum_object_size 512 MB
range_offset_limit -1
quick_abort_min -1 KB
collapsed_forwarding on
refresh_pattern -i \\.(simg|sif)$ 10080 100% 525600 ignore-reload
refresh_pattern . 0 20% 4320
pid_filename {root}/squid.pid
access_log stdio:{root}/access.log
cache_log {root}/cache.log
cache_store_log none
coredump_dir {root}
shutdown_lifetime 0 seconds
"""


class Squid:
    def __init__(self) -> None:
        # squid drops root for its own user: its files live where that user can write.
        self.root = Path(tempfile.mkdtemp(prefix="nd-squid-"))
        self.root.chmod(0o777)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Squid:
        config = self.root / "squid.conf"
        config.write_text(CONFIG.format(port=self.port, root=self.root))
        log = (self.root / "out.log").open("ab")
        self.proc = subprocess.Popen(["squid", "-N", "-f", str(config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"squid did not start: {self.log()}") from None
                time.sleep(0.1)

    def log(self) -> str:
        path = self.root / "cache.log"
        return path.read_text()[-2000:] if path.exists() else ""

    def access(self) -> list[str]:
        path = self.root / "access.log"
        return path.read_text().splitlines() if path.exists() else []

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)
