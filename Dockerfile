# syntax=docker/dockerfile:1
# Ringback container image: a release build with locked dependencies, run by an unprivileged user on a
# minimal Debian with CA certificates only. No tzdata: the binary bundles its time-zone database (jiff).
#   docker build -t ringback --build-arg RINGBACK_REVISION=$(git rev-parse --short HEAD) .
#   docker run --rm -p 3050:3050 -p 3005:3005 -e RINGBACK__DATABASE__URL=postgres://... ringback
# The builder and the runtime share Debian 12 (bookworm), so the binary's glibc matches.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# Shown as the `revision` label of ges_build_info.
ARG RINGBACK_REVISION=unknown
ENV RINGBACK_REVISION=${RINGBACK_REVISION}
# What the release binary is built from (see .dockerignore): the manifest, the lock file, the code, the
# migrations it embeds, and the benches the manifest names.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY benches ./benches
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin ringback \
 && install -D -m 0755 target/release/ringback /out/ringback

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# uid/gid 10001, as the Helm chart's podSecurityContext expects; its working directory is the only
# writable place (for the embedded SQLite default; production uses PostgreSQL and a read-only root).
RUN groupadd --gid 10001 ringback \
 && useradd --uid 10001 --gid 10001 --no-log-init --no-create-home --home-dir /var/lib/ringback \
      --shell /usr/sbin/nologin ringback \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/ringback
COPY --from=build /out/ringback /usr/local/bin/ringback
USER 10001:10001
WORKDIR /var/lib/ringback
LABEL org.opencontainers.image.title="ringback" \
      org.opencontainers.image.description="Callback engagement service (GES v3-compatible API)" \
      org.opencontainers.image.licenses="Apache-2.0"
# 3050: internal listener (public, admin, internal APIs, /metrics, health); 3005: external (public API, health).
EXPOSE 3050 3005
# Ringback drains on SIGTERM (readiness fails, in-flight requests finish within http.shutdown_timeout_seconds).
STOPSIGNAL SIGTERM
ENTRYPOINT ["ringback"]
CMD ["serve"]
