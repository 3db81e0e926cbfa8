# syntax=docker/dockerfile:1
# One image for every Rewind component: `rewind controller`, `rewind collector`, the CLI
# and the kubectl plugins (the CSI plugin joins it once it exists). The chart runs it as
# UID/GID 10001 with a read-only root filesystem: the process writes only to its mounted
# volumes (the collector's --data) and /tmp (an emptyDir in the chart).
#
#   docker build -t rewind:0.1.0 .

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
# Dependencies first, so a source change does not reinstall them.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bench ./bench
COPY proto ./proto
RUN npx tsc -p tsconfig.build.json \
 && npm prune --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build --chown=root:root /src/node_modules ./node_modules
COPY --from=build --chown=root:root /src/dist ./dist
COPY --chown=root:root package.json ./
COPY --chown=root:root proto ./proto
# The collector's timeline page (/ui/): static files tsc does not copy into dist/.
COPY --chown=root:root src/collector/ui ./src/collector/ui
COPY --chown=root:root bin ./bin
# Files belong to root and are not writable by the runtime user: the code cannot be changed
# by the process running it, read-only root filesystem or not.
RUN chmod -R a+rX,go-w /app \
 && groupadd --gid 10001 rewind \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin rewind \
 && mkdir -p /var/lib/rewind \
 && chown 10001:10001 /var/lib/rewind
# Numeric, so the kubelet can check runAsNonRoot without reading /etc/passwd.
USER 10001:10001
VOLUME ["/var/lib/rewind"]
ENTRYPOINT ["/app/bin/rewind"]
CMD ["--help"]
