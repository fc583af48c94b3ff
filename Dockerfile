# Baton agent image: Swift builder → slim Debian runtime with libstrophe and the tools the
# lifecycle modules call. Run one agent per container:
#   docker run -v /etc/baton:/etc/baton:ro -v baton-state:/var/lib/baton baton agentd --config /etc/baton/build.yaml
# Passwords come from the mounted config (password_file) or $BATON_PASSWORD — never baked in.

FROM swift:6.1-bookworm AS builder
RUN apt-get update && apt-get install -y --no-install-recommends libstrophe-dev pkg-config libsqlite3-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --product agentd && swift build -c release --product agentctl \
    && mkdir -p /out && cp "$(swift build -c release --show-bin-path)"/agentd "$(swift build -c release --show-bin-path)"/agentctl /out/

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
        libstrophe0 libsqlite3-0 ca-certificates \
        runc busybox-static squashfs-tools e2fsprogs cpio qemu-utils qemu-system-x86 mmdebstrap \
        dpkg-dev apt-utils util-linux \
    && rm -rf /var/lib/apt/lists/*
# The Swift runtime libraries the binaries link against.
COPY --from=builder /usr/lib/swift/linux/*.so /usr/lib/swift/linux/
RUN echo /usr/lib/swift/linux > /etc/ld.so.conf.d/swift.conf && ldconfig
COPY --from=builder /out/agentd /out/agentctl /usr/local/bin/
COPY recipes /usr/share/baton/recipes
COPY workflows /usr/share/baton/workflows
RUN useradd --system --home /var/lib/baton baton && mkdir -p /var/lib/baton && chown baton /var/lib/baton
VOLUME /var/lib/baton
WORKDIR /var/lib/baton
# Image builds and VM tests need root (loop devices, chroot, runc); plain agents can drop it:
# docker run --user baton …
ENTRYPOINT ["/usr/local/bin/agentd"]
CMD ["--config", "/etc/baton/agent.yaml"]
