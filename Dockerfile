# pixpool image: Debian 12 packages only, built with the same scripts a
# developer uses (scripts/setup run installs what the build needs).
FROM debian:12 AS build
WORKDIR /src
COPY scripts/setup scripts/setup
RUN bash scripts/setup run
COPY . .
RUN cmake --preset release -DPIXPOOL_BUILD_TESTS=OFF && cmake --build --preset release

# The server: the libraries the binary links (readelf -d build/release/pixpool:
# OpenCV core/imgproc/imgcodecs, oneTBB, cpp-httplib, TurboJPEG, libcurl,
# libarchive, and hiredis for the Redis job store of cluster mode; the build
# stage gets libhiredis-dev from scripts/setup run), ca-certificates for
# https ?url= downloads, and curl for the health checks (HEALTHCHECK below,
# docker-compose.yml).
FROM debian:12 AS runtime
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libopencv-core406 libopencv-imgproc406 libopencv-imgcodecs406 libtbb12 \
      libcpp-httplib0.11 libjpeg62-turbo libcurl4 libarchive13 libhiredis0.14 \
      ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/release/pixpool /usr/local/bin/pixpool
ENV PIXPOOL_HOST=0.0.0.0 PIXPOOL_PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/pixpool"]

# The load generator of docker-compose.yml (`pixpool bench`): the server image
# plus gnuplot, which draws the report's SVG plots. The server never runs it.
FROM runtime AS loadgen
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gnuplot-nox \
 && rm -rf /var/lib/apt/lists/*

# The default target (`docker build .`): the server.
FROM runtime
