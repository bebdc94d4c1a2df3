# syntax=docker/dockerfile:1
# MovR production image: `docker build -t movr .` (the README runbook builds, pushes and deploys it).
# Node 22 is the supported LTS line the project runs on (20 reached end of life in April 2026).
# Pin exactly; for reproducible builds add the digest: docker buildx imagetools inspect node:22.23.3-bookworm-slim
ARG NODE_IMAGE=node:22.23.3-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# tsc needs no install scripts: they only unpack the embedded PostgreSQL, check esbuild and find bcrypt's prebuild.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    PORT=8000 \
    HOST=0.0.0.0
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=optional leaves out the embedded PostgreSQL binaries (@embedded-postgres/<platform>, ~60 MB, and their
# postinstall script), which the app refuses to start when NODE_ENV=production, and pg-cloudflare (Workers only).
# bcrypt's install script still runs: it only selects the shipped N-API prebuild, nothing is compiled.
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY views ./views
COPY public ./public
# The CockroachDB schema and its upgrades, for operators who load them from the image (see README).
COPY dbinit.sql dbinit-multiregion.sql ./
COPY db ./db
# The numeric uid of the image's `node` user, so Kubernetes' runAsNonRoot can verify it; the app files stay root-owned.
USER 1000:1000
EXPOSE 8000
# Docker only (Kubernetes uses the probes in movr.yaml); slim has no curl, so node asks /healthz itself.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node itself is PID 1 (not npm, whose prestart would rebuild): SIGTERM reaches the app's graceful shutdown.
# The same command as `npm start`: a 4 MiB young generation (V8's default is 16) keeps a worker ~10 MiB smaller
# idle, and an old generation that may only double between collections (V8 lets it grow ~4x over a ~22 MiB live
# heap) keeps it ~30 MiB smaller under load, with no CPU cost the bench can see; and the collector works on the
# worker's own thread, not on helper threads that compete with the other workers for the cores (README, "Benchmark").
CMD ["node", "--max-semi-space-size=4", "--heap-growing-percent=100", "--single-threaded-gc", "dist/server.js"]
