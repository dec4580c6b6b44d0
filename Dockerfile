# weft node image: weftd, weftctl, weft-install-cni and the CNI plugin binaries.
#
#   docker build -t weft:0.1.0 .
#
# The plugins live in /opt/weft/bin inside the image; the DaemonSet's init container
# (weft-install-cni) copies them onto the node's /opt/cni/bin, where the container runtime
# executes them in the node's namespaces (so they must not depend on anything in this image).
# They are linked against bookworm's glibc (2.36): nodes need glibc >= 2.36, or build the
# plugins for a musl target instead.

FROM rust:1.95-bookworm AS build
# protoc: etcd-client's build script compiles etcd's protobuf definitions.
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bins \
      -p weft-plugin -p weft-chained -p weft-agent -p weft-ctl -p weft-install \
 && mkdir -p /out/plugins /out/bin \
 && cp target/release/weft target/release/weft-ipam target/release/weft-loopback \
       target/release/weft-portmap target/release/weft-bandwidth target/release/weft-tuning \
       /out/plugins/ \
 && cp target/release/weftd target/release/weftctl target/release/weft-install-cni /out/bin/

FROM debian:bookworm-slim
# nftables: weftd and the plugins apply rendered rulesets with `nft -f -`.
# ca-certificates: weftd talks TLS to the API server (and etcd, if used).
RUN apt-get update \
 && apt-get install -y --no-install-recommends nftables ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/plugins/ /opt/weft/bin/
COPY --from=build /out/bin/ /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/weftd"]
