#!/usr/bin/env python3
"""oci-image.py: a one-layer OCI image archive from host files, with no registry and no daemon.

    hack/oci-image.py --name ghcr.io/legate-dev/legate-agent:0.1.0 --out agent.tar \
        --user 65532:65532 --entrypoint /usr/local/bin/legate-agent \
        --add target/release/legate-agent:/usr/local/bin/legate-agent --libs

The layout is the one the root Dockerfile gets from distroless `cc-debian12:nonroot`, reduced to
what the binaries need: the files given with --add, the shared libraries they link (from this
host, found with ldd; --libs), CA certificates, an /etc/passwd and /etc/group with `nonroot`
(65532) and `envoy` (101), /tmp (1777) and /home/nonroot. No shell, no package manager. Debian's
merged /usr: /lib and /lib64 are links into /usr.

The archive is an OCI image layout tar (oci-layout, index.json, blobs/sha256/...) with one
uncompressed layer, named through the `io.containerd.image.name` annotation, so
`ctr images import` (e2e/kube-local load) tags it. Files are owned by root with mtime 0: the
same inputs give the same digest. Tags must not be `latest` (the kubelet would pull it).
"""

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PASSWD = "root:x:0:0:root:/root:/sbin/nologin\nenvoy:x:101:101:envoy:/home/envoy:/sbin/nologin\n" \
         "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
GROUP = "root:x:0:\nenvoy:x:101:\nnonroot:x:65532:\n"
CERTS = "/etc/ssl/certs/ca-certificates.crt"


def usr(path):
    """Where a library path lands in the image: /lib/... and /lib64/... live under /usr."""
    for top in ("/lib/", "/lib64/"):
        if path.startswith(top):
            return "/usr" + path
    return path


def libraries(binary):
    """The shared objects `binary` loads, as ldd resolves them on this host."""
    out = subprocess.run(["ldd", binary], check=True, capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        if "=>" in parts:
            target = parts[parts.index("=>") + 1]
            if target.startswith("/"):
                libs.append(target)
        elif parts and parts[0].startswith("/"):
            libs.append(parts[0])  # the interpreter, e.g. /lib64/ld-linux-x86-64.so.2
    return libs


class Layer:
    def __init__(self):
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)
        self.seen = set()

    def _info(self, path, kind, mode, uid=0, gid=0):
        ti = tarfile.TarInfo(path.lstrip("/"))
        ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = kind, mode, uid, gid, 0
        return ti

    def dir(self, path, mode=0o755, uid=0, gid=0):
        parent = os.path.dirname(path.rstrip("/"))
        if parent not in ("", "/") and parent not in self.seen:
            self.dir(parent)
        if path not in self.seen:
            self.seen.add(path)
            self.tar.addfile(self._info(path, tarfile.DIRTYPE, mode, uid, gid))

    def file(self, path, data, mode=0o644):
        if path in self.seen:
            return
        self.dir(os.path.dirname(path))
        self.seen.add(path)
        ti = self._info(path, tarfile.REGTYPE, mode)
        ti.size = len(data)
        self.tar.addfile(ti, io.BytesIO(data))

    def link(self, path, target):
        self.dir(os.path.dirname(path))
        self.seen.add(path)
        ti = self._info(path, tarfile.SYMTYPE, 0o777)
        ti.linkname = target
        self.tar.addfile(ti)

    def bytes(self):
        self.tar.close()
        return self.buf.getvalue()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--name", required=True, help="image reference, e.g. ghcr.io/x/y:1.0")
    ap.add_argument("--out", required=True, help="the OCI archive to write")
    ap.add_argument("--add", action="append", default=[], metavar="SRC:DEST", help="a host file into the image")
    ap.add_argument("--libs", action="store_true", help="also add the shared libraries the --add files link")
    ap.add_argument("--user", default="65532:65532")
    ap.add_argument("--entrypoint", help="the binary to run (its arguments come from the pod)")
    a = ap.parse_args()

    tag = a.name.rsplit("/", 1)[-1].partition(":")[2]
    if not tag or tag == "latest":
        sys.exit(f"oci-image: {a.name}: give a tag other than latest (the kubelet would pull it)")

    layer = Layer()
    layer.link("/lib", "usr/lib")
    layer.link("/lib64", "usr/lib64")
    for d in ("/usr/lib", "/usr/lib64", "/usr/local/bin", "/etc/ssl/certs"):
        layer.dir(d)
    layer.dir("/tmp", 0o1777)
    layer.dir("/home/nonroot", 0o700, 65532, 65532)
    layer.dir("/home/envoy", 0o700, 101, 101)
    layer.file("/etc/passwd", PASSWD.encode())
    layer.file("/etc/group", GROUP.encode())
    if os.path.exists(CERTS):
        with open(CERTS, "rb") as f:
            layer.file(CERTS, f.read())
    for spec in a.add:
        src, _, dest = spec.partition(":")
        with open(src, "rb") as f:
            layer.file(dest, f.read(), 0o755)
        if a.libs:
            for lib in libraries(src):
                with open(os.path.realpath(lib), "rb") as f:
                    layer.file(usr(lib), f.read(), 0o755)

    blobs = {}

    def blob(data):
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return "sha256:" + digest, len(data)

    layer_digest, layer_size = blob(layer.bytes())
    config = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "config": {"User": a.user, "Env": [PATH_ENV], "WorkingDir": "/"},
    }
    if a.entrypoint:
        config["config"]["Entrypoint"] = [a.entrypoint]
    config_digest, config_size = blob(json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}],
    }
    manifest_digest, manifest_size = blob(json.dumps(manifest, sort_keys=True).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"io.containerd.image.name": a.name, "org.opencontainers.image.ref.name": tag},
        }],
    }
    tmp = a.out + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as t:
        def add(name, data):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 0
            t.addfile(ti, io.BytesIO(data))
        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", json.dumps(index, sort_keys=True).encode())
        for digest, data in sorted(blobs.items()):
            add("blobs/sha256/" + digest, data)
    os.replace(tmp, a.out)
    print(f"oci-image: {a.name} -> {a.out} ({layer_size // (1 << 20)} MiB, {manifest_digest[:19]})")


if __name__ == "__main__":
    main()
