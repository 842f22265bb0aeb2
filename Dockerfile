# syntax=docker/dockerfile:1
# Portcullis container image.
#   docker build -t portcullis .
#   docker run -p 3128:3128 -v "$PWD/config:/app/config" -v portcullis-certs:/app/certs portcullis
# The proxy listens on 0.0.0.0:3128 (PORTCULLIS_LISTEN below). The admin API
# host comes from the config file only: the shipped config binds it to
# 127.0.0.1:9090, which is reachable from inside the container (healthcheck)
# but not from outside. To publish 9090, set `admin: { host: 0.0.0.0 }` in the
# mounted config and pass PORTCULLIS_ADMIN_TOKEN.

ARG NODE_IMAGE=node:24-bookworm-slim

# ---- build: compile TypeScript, then drop dev dependencies ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
# tsc emits .js only, so the static admin page is copied next to the compiled server.
RUN npm run build \
 && if [ -d src/admin/page ]; then mkdir -p dist/admin && cp -R src/admin/page dist/admin/; fi \
 && npm prune --omit=dev --no-audit --no-fund

# ---- runtime ----
FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    PORTCULLIS_LISTEN=0.0.0.0:3128 \
    PORTCULLIS_CONFIG=/app/config/portcullis.yaml
WORKDIR /app
# Code is root-owned and read-only to the process. certs/ is writable (CA, CA
# key and admin token are generated there on first start, mode 0600), and so
# is config/, because approvals.file defaults to config/approvals.yaml.
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY docs ./docs
COPY config ./config
COPY certs/README.md ./certs/README.md
RUN chown node:node /app/certs /app/config && chmod 0700 /app/certs
USER node
# Relative paths in the config (certs/ca.pem, config/approvals.yaml) resolve
# against /app. Mount your config over /app/config and keep /app/certs on a
# persistent volume so the CA sandboxes trust survives restarts. A bind mount
# over /app/config must be writable by uid 1000 (node) for approvals.
VOLUME ["/app/config", "/app/certs"]
EXPOSE 3128 9090
# Slim images have no curl; Node's built-in fetch does the job. The check asks the
# admin port of the shipped config (9090): change it here too if you move admin.port.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9090/healthz',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "dist/cli/main.js", "start", "--config", "/app/config/portcullis.yaml"]
