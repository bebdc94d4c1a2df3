# syntax=docker/dockerfile:1
# MovR production image: `docker build -t movr .` (docs/operations.md builds, pushes and deploys it).
# Node 22, the LTS line package.json's engines names; pinned exactly (add the digest for reproducible builds).
ARG NODE_IMAGE=node:22.23.3-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# tsc needs no install scripts (they unpack the embedded PostgreSQL and pick native prebuilds).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
# Only the runtime: tsconfig.build.json compiles src/, never tools/, scripts/ or test/.
COPY src ./src
RUN npm run build

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    PORT=8000 \
    HOST=0.0.0.0
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=optional leaves out the embedded PostgreSQL binaries, which production refuses to use anyway.
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY views ./views
COPY public ./public
# The CockroachDB schema and its upgrades, for operators who load them from the image (docs/cockroachdb.md).
COPY dbinit.sql dbinit-multiregion.sql ./
COPY db ./db
# The `node` user by number, so Kubernetes' runAsNonRoot can verify it; the app files stay root-owned.
USER 1000:1000
EXPOSE 8000
# Docker only (Kubernetes uses the probes in movr.yaml); slim has no curl, so node asks /healthz itself.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node itself is PID 1 (not npm, whose prestart would rebuild), so SIGTERM reaches the app's graceful shutdown.
# The flags of `npm start`: a smaller, single-threaded heap per worker (docs/benchmark.md has the figures).
CMD ["node", "--max-semi-space-size=4", "--heap-growing-percent=50", "--single-threaded-gc", "dist/server.js"]
