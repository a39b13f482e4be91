# syntax=docker/dockerfile:1
#
# The two images Legate ships, from one file with one target each:
#
#   docker build --target operator -t ghcr.io/legate-dev/legate-operator:0.1.0 .
#   docker build --target agent    -t ghcr.io/legate-dev/legate-agent:0.1.0 .
#
# One file rather than operator/Dockerfile and gateway-agent/Dockerfile: both binaries come from
# the same Cargo workspace (the operator even links the agent crate, and both build on crds/ and
# common/), so a single builder stage compiles the shared dependency graph once, with one
# Cargo.lock and one cache, and both images are sure to come from the same sources.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
# The registry and target caches persist between builds (BuildKit); the binaries are copied out
# of the cached target/ in the same step, since cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p legate-operator -p legate-agent \
    && install -D -m 0755 target/release/legate-operator /out/legate-operator \
    && install -D -m 0755 target/release/legate-agent /out/legate-agent

# distroless cc: glibc and libgcc (what a Rust binary links) and CA certificates, nothing else: no
# shell, no package manager. Debian 12, like the builder, so the glibc versions match. `nonroot`
# is user 65532; it is repeated numerically so Kubernetes can check runAsNonRoot.
FROM gcr.io/distroless/cc-debian12:nonroot AS operator
COPY --from=builder /out/legate-operator /usr/local/bin/legate-operator
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/legate-operator"]

FROM gcr.io/distroless/cc-debian12:nonroot AS agent
COPY --from=builder /out/legate-agent /usr/local/bin/legate-agent
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/legate-agent"]
