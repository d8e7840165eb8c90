"""Loopback replicas of upstream's four channels, holding one small runnable container.

* a CVMFS-layout tree (``containers/<id>/<id>.simg/``, upstream's unpacked sandboxes);
* Debian's ``docker-registry`` with **token auth**: :class:`TokenServer` signs JWTs (RS256, the
  certificate in ``x5c``) with a key whose certificate the registry trusts; anyone may pull,
  pushing needs the user and password of :data:`PUSHER` (Basic auth at the token endpoint);
  the image is ``neurodesk/<name>:<version>_<date>`` (upstream's naming) with its SIF attached
  as a referrer artifact (tag schema: this registry has no Referrers API);
* two object-storage mirrors (:class:`tests.httpserve.FileServer`, Range support) with
  ``<id>.simg``.

The container is a real root filesystem (the host's ``dash`` and its libraries plus a
``fslhello`` script) so ``neurodesk exec`` runs it with bubblewrap.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import io
import json
import random
import shutil
import subprocess
import tarfile
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.integration.distribution_helpers import free_port, wait_http

NAME, VERSION, DATE = "fsl", "6.0.7.4", "20231025"
ID = f"{NAME}_{VERSION}_{DATE}"
PUSHER = ("labadmin", "s3cret")
SERVICE = "neurodesk-test-registry"
ISSUER = "neurodesk-test-tokens"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_rootfs(root: Path, payload: int = 0) -> Path:
    """dash as /bin/sh with its libraries, /usr/bin/fslhello; ``payload`` random bytes extra."""
    for directory in (
        "bin",
        "usr/bin",
        "lib/x86_64-linux-gnu",
        "lib64",
        "tmp",
        "etc",
        "dev",
        "proc",
    ):
        (root / directory).mkdir(parents=True, exist_ok=True)
    shutil.copy2("/bin/dash", root / "bin" / "sh")
    libs = subprocess.run(["ldd", "/bin/dash"], capture_output=True, text=True, check=True)
    for line in libs.stdout.splitlines():
        for part in line.split():
            if part.startswith("/") and Path(part).is_file():
                target = root / part.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(part, target)
    tool = root / "usr" / "bin" / "fslhello"
    tool.write_text('#!/bin/sh\necho "fsl says hello from $0"\n')
    tool.chmod(0o755)
    env_dir = root / ".singularity.d" / "env"
    env_dir.mkdir(parents=True)
    (env_dir / "90-environment.sh").write_text(
        "export PATH=/usr/bin:/bin\nexport DEPLOY_BINS=fslhello\n"
    )
    if payload:
        (root / "opt").mkdir(exist_ok=True)
        generator = random.Random(f"payload{payload}")  # incompressible, reproducible
        with (root / "opt" / "payload.bin").open("wb") as out:
            left = payload
            while left > 0:
                out.write(generator.randbytes(min(left, 1 << 20)))
                left -= 1 << 20
    return root


ENV = {"PATH": "/usr/bin:/bin", "DEPLOY_BINS": "fslhello"}


def make_sif(rootfs: Path, path: Path) -> Path:
    from neurodesk.image.sif_write import write_sif

    return write_sif(rootfs, path, ENV, {"org.neurodesk.test": "channels"}).path


def make_tree(rootfs: Path, root: Path) -> Path:
    container = root / "containers" / ID
    container.mkdir(parents=True)
    shutil.copytree(rootfs, container / f"{ID}.simg", symlinks=True)
    (container / "commands.txt").write_text("fslhello\n")
    return root


# -------------------------------------------------------------------- tokens for the registry


class TokenServer:
    """Issues registry tokens: pull for anyone, push only with :data:`PUSHER`'s Basic auth."""

    def __init__(self, root: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(self.key, hashes.SHA256())
        )
        self.cert_pem = root / "token-cert.pem"
        self.cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        self.issued: list[tuple[str, str]] = []  # (scope, who)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)
                who = ""
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                    if (user, password) != PUSHER:
                        self.send_response(401)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    who = user
                access = []
                for scope in query.get("scope", []):
                    kind, _, rest = scope.partition(":")
                    repo, _, actions = rest.rpartition(":")
                    allowed = [
                        a for a in actions.split(",") if a == "pull" or (a == "push" and who)
                    ]
                    if kind == "registry":
                        allowed = ["*"]
                    access.append({"type": kind, "name": repo, "actions": allowed})
                    owner.issued.append((scope, who))
                token = owner.sign(who or "anonymous", access)
                body = json.dumps({"token": token, "access_token": token, "expires_in": 300})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def sign(self, subject: str, access: list[dict[str, Any]]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        signature = self.key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing}.{b64url(signature)}"

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/token"

    def start(self) -> TokenServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class TokenRegistry:
    """``docker-registry serve`` on loopback, trusting :class:`TokenServer`'s certificate."""

    def __init__(self, root: Path, tokens: TokenServer) -> None:
        self.root = root
        self.tokens = tokens
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> TokenRegistry:
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log: {level: error}\n"
            f"storage: {{filesystem: {{rootdirectory: {self.root / 'storage'}}}, "
            "delete: {enabled: true}}\n"
            f"http: {{addr: {self.address}}}\n"
            "auth:\n"
            "  token:\n"
            f"    realm: {self.tokens.realm}\n"
            f"    service: {SERVICE}\n"
            f"    issuer: {ISSUER}\n"
            f"    rootcertbundle: {self.tokens.cert_pem}\n"
        )
        log = (self.root / "registry.log").open("ab")
        self.proc = subprocess.Popen(
            ["/usr/bin/docker-registry", "serve", str(config)], stdout=log, stderr=log
        )
        wait_http(f"http://{self.address}/v2/")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


# -------------------------------------------------------------------- pushing the image


def _tar_rootfs(rootfs: Path) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for path in sorted(rootfs.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(rootfs)))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 1700000000
            if info.isfile():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    return raw.getvalue()


@dataclass(frozen=True)
class Pushed:
    repo: str
    tag: str
    digest: str


def push_image(registry_address: str, rootfs: Path, work: Path, auth_file: Path) -> Pushed:
    """Push ``rootfs`` as ``neurodesk/fsl:6.0.7.4_20231025`` with our registry client, as the
    user of ``auth_file`` (push needs credentials)."""
    import os

    from neurodesk.sources.registry import OCI_MANIFEST, Registry, RegistryAddress

    layer_tar = _tar_rootfs(rootfs)
    diff_id = "sha256:" + hashlib.sha256(layer_tar).hexdigest()
    layer = gzip.compress(layer_tar, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": [f"{k}={v}" for k, v in ENV.items()]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    blobs = {}
    for data in (layer, config):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = work / digest.removeprefix("sha256:")
        path.write_bytes(data)
        blobs[digest] = (path, len(data))
    layer_digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest,
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    old = os.environ.get("REGISTRY_AUTH_FILE")
    os.environ["REGISTRY_AUTH_FILE"] = str(auth_file)
    try:
        registry = Registry(RegistryAddress.parse(registry_address, insecure=True))
        repo, tag = f"neurodesk/{NAME}", f"{VERSION}_{DATE}"
        for digest, (path, _size) in blobs.items():
            registry.upload_blob(repo, digest, path)
        digest = registry.put_manifest(repo, tag, manifest, OCI_MANIFEST)
        registry.close()
    finally:
        if old is None:
            os.environ.pop("REGISTRY_AUTH_FILE", None)
        else:
            os.environ["REGISTRY_AUTH_FILE"] = old
    return Pushed(repo, tag, digest)


def write_auth_file(path: Path, host: str) -> Path:
    token = base64.b64encode(":".join(PUSHER).encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": token}}}))
    return path


class Started:
    """Context manager stopping everything it was given, in reverse order."""

    def __init__(self, *things: Any) -> None:
        self.things = list(things)

    def __enter__(self) -> Started:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for thing in reversed(self.things):
            thing.stop()
