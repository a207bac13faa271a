# Sluice worker image (Debian bookworm), multi-stage:
#   build    the -dev packages, `make` and `make install` into /out
#   runtime  only the runtime libraries, a non-root user; the default target
#   tools    runtime + the local stand-ins (snowflake-emulator, finnhub-replay)
#            and socat/openssl, for docker-compose.yml's `local` profile
# docker build -t sluice .            (runtime)
# docker build --target tools -t sluice-tools .
FROM debian:bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      build-essential pkg-config librdkafka-dev libavro-dev libwebsockets-dev \
      libcurl4-openssl-dev libjansson-dev libssl-dev libsqlite3-dev libmicrohttpd-dev \
      libcmocka-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile VERSION sluice.pc.in ./
COPY include include
COPY host host
COPY plugins plugins
COPY tools tools
COPY tests tests
COPY schemas schemas
RUN make -j"$(nproc)" all \
    && make install PREFIX=/opt/sluice DESTDIR=/out \
    && install -d /out/opt/sluice/tools \
    && install -m 755 build/tools/snowflake-emulator build/tools/finnhub-replay /out/opt/sluice/tools/ \
    && strip /out/opt/sluice/bin/sluice /out/opt/sluice/lib/sluice/plugins/*.so /out/opt/sluice/tools/*

FROM debian:bookworm-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends \
      librdkafka1 libavro23 libwebsockets17 libcurl4 libjansson4 libssl3 libmicrohttpd12 \
      ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/sluice --create-home sluice
COPY --from=build /out/opt/sluice/bin /opt/sluice/bin
COPY --from=build /out/opt/sluice/lib/sluice /opt/sluice/lib/sluice
COPY --from=build /out/opt/sluice/share/sluice/schemas /opt/sluice/schemas
COPY conf /opt/sluice/conf
WORKDIR /opt/sluice
ENV PATH=/opt/sluice/bin:$PATH \
    SLUICE_PLUGIN_PATH=/opt/sluice/lib/sluice/plugins \
    SLUICE_REST_HOST=0.0.0.0 \
    SLUICE_REST_PORT=8083 \
    SLUICE_OFFSETS_FILE=/var/lib/sluice/standalone.offsets \
    SLUICE_CONFIG_STORAGE_FILE=/var/lib/sluice/connectors.json \
    SLUICE_LOG_FORMAT=logfmt
USER sluice
VOLUME /var/lib/sluice
EXPOSE 8083
HEALTHCHECK --interval=10s --timeout=3s --retries=5 CMD curl -sf http://127.0.0.1:8083/ -o /dev/null || exit 1
CMD ["sluice", "standalone", "conf/worker.json"]

FROM runtime AS tools
USER root
RUN apt-get update && apt-get install -y --no-install-recommends socat openssl libsqlite3-0 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/opt/sluice/tools /opt/sluice/tools
ENV PATH=/opt/sluice/tools:/opt/sluice/bin:$PATH
USER sluice
