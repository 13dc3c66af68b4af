# syntax=docker/dockerfile:1
# Build: docker build -t ballast .     Run: docker run -p 127.0.0.1:8080:8080 ballast
# The build mirrors what CI compiles: `cargo build --release --locked`.
# tests/deploy/check_deploy.py checks this file statically (see docs/deployment.md).

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, in their own layer: a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked --bin ballast \
    && rm -rf src
COPY src ./src
# COPY keeps the files' times, which may be older than the placeholder build: touch them so
# cargo rebuilds the crate itself.
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin ballast

FROM debian:bookworm-slim
LABEL org.opencontainers.image.title="ballast" \
      org.opencontainers.image.description="A reverse-proxy gateway in front of LLM providers (OpenAI chat-completions API)" \
      org.opencontainers.image.licenses="Apache-2.0"
# ca-certificates for TLS to the providers; curl for the health check below.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 ballast \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --no-log-init \
        --shell /usr/sbin/nologin ballast
COPY --from=build /src/target/release/ballast /usr/local/bin/ballast
COPY config /etc/ballast
# Numeric, so Kubernetes' runAsNonRoot can verify it without a runAsUser.
USER 10001:10001
ENV BALLAST_CONFIG=/etc/ballast/demo.yaml \
    BALLAST_LISTEN=0.0.0.0:8080
EXPOSE 8080
# /healthz answers 200 while the process runs (readiness is /readyz, for orchestrators).
HEALTHCHECK --interval=10s --timeout=2s --start-period=5s --retries=3 \
    CMD curl -fsS -o /dev/null http://127.0.0.1:8080/healthz || exit 1
# SIGTERM drains in-flight requests and streams for server.shutdown_grace, then exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["ballast"]
CMD ["serve"]
