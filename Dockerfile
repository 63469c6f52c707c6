# Release Pilot: one binary, every subcommand. Build: docker build -t release-pilot .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin release-pilot

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/release-pilot release-pilot
COPY --from=build /src/target/release/release-pilot /usr/local/bin/release-pilot
USER release-pilot
WORKDIR /var/lib/release-pilot
ENV RELEASE_PILOT_DATA_DIR=/var/lib/release-pilot/data \
    RELEASE_PILOT_LOG_FORMAT=json
ENTRYPOINT ["release-pilot"]
CMD ["--help"]
