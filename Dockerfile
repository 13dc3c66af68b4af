# syntax=docker/dockerfile:1
# Build: docker build -t ballast .     Run: docker run -p 8080:8080 ballast
# The build mirrors what CI compiles: `cargo build --release --locked`.

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
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin ballast

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin ballast
COPY --from=build /src/target/release/ballast /usr/local/bin/ballast
COPY config /etc/ballast
USER ballast
ENV BALLAST_CONFIG=/etc/ballast/demo.yaml \
    BALLAST_LISTEN=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=2s --start-period=5s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["ballast"]
CMD ["serve"]
