# bkcache sidecar image: build with the full toolchain, run on a slim base
# as a non-root user, listening on a unix socket in a shared volume. The
# image holds the CLI, the daemon and their dependencies: no tests, no
# benchmarks (.dockerignore keeps them out of the build context).
#   docker build -t bkcache .
#   docker run -v bkcache-sock:/run/bkcache -v bkcache-store:/var/lib/bkcache bkcache

FROM node:20-bookworm AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` builds, and the sources are not copied yet.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json ./
COPY proto ./proto
COPY src ./src
RUN npm run build && npm prune --omit=dev --ignore-scripts

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    BKCACHE_ADDR=unix:///run/bkcache/bkcache.sock
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/proto ./proto
RUN ln -s /app/dist/src/cli/main.js /usr/local/bin/bkcache \
 && mkdir -p /run/bkcache /var/lib/bkcache \
 && chown node:node /run/bkcache /var/lib/bkcache
USER node
# The socket is shared with buildkitd or the solver through this volume;
# --socket-mode/--socket-group let a solver running as another user connect.
VOLUME ["/run/bkcache", "/var/lib/bkcache"]
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 CMD ["bkcache", "health"]
ENTRYPOINT ["bkcache", "serve"]
CMD ["--addr", "unix:///run/bkcache/bkcache.sock", "--root", "/var/lib/bkcache"]
