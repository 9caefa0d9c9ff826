# qos built from source on Debian with the Swift toolchain image, run on a slim Debian.
# Used by docker-compose-process.yml; not built in CI (no Docker engine there).
FROM swift:6.1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
        librdkafka-dev libmaxminddb-dev libzstd-dev zlib1g-dev libmimalloc-dev pkg-config && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --product qos --static-swift-stdlib && cp .build/release/qos /usr/local/bin/qos

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
        librdkafka1 libmaxminddb0 libzstd1 zlib1g libmimalloc2.0 uap-core ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/qos /usr/local/bin/qos
# Runs as root so it can write to a fresh named volume; mount a prepared
# directory and add `USER` to run unprivileged.
ENTRYPOINT ["qos"]
CMD ["run"]
