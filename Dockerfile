# One image for both services: the edge runs apps/edge/dist/main.js, the router (default)
# apps/router/dist/main.js. Build: docker build -t switchboard .
FROM node:22-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.base.json tsconfig.json ./
COPY packages/wire/package.json packages/wire/
COPY packages/protocol/package.json packages/protocol/
COPY packages/registry/package.json packages/registry/
COPY packages/config/package.json packages/config/
COPY packages/backend/package.json packages/backend/
COPY apps/edge/package.json apps/edge/
COPY apps/router/package.json apps/router/
COPY apps/local/package.json apps/local/
COPY bench/package.json bench/
RUN npm ci
COPY packages packages
COPY apps apps
RUN npx tsc -b

FROM node:22-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/packages/wire/package.json packages/wire/
COPY --from=build /app/packages/protocol/package.json packages/protocol/
COPY --from=build /app/packages/registry/package.json packages/registry/
COPY --from=build /app/packages/config/package.json packages/config/
COPY --from=build /app/apps/edge/package.json apps/edge/
COPY --from=build /app/apps/router/package.json apps/router/
COPY --from=build /app/apps/local/package.json apps/local/
COPY --from=build /app/bench/package.json bench/
# Production dependencies only (the bench's socket.io and friends are devDependencies).
RUN npm ci --omit=dev && npm cache clean --force
COPY --from=build /app/packages/wire/dist packages/wire/dist
COPY --from=build /app/packages/protocol/dist packages/protocol/dist
COPY --from=build /app/packages/registry/dist packages/registry/dist
COPY --from=build /app/packages/registry/lua packages/registry/lua
COPY --from=build /app/packages/config/dist packages/config/dist
COPY --from=build /app/apps/edge/dist apps/edge/dist
COPY --from=build /app/apps/router/dist apps/router/dist
COPY --from=build /app/apps/router/admin-web apps/router/admin-web
# The node image's unprivileged user; the services need no privilege (ports above 1024).
USER node
EXPOSE 3000 8080 8081
ENTRYPOINT ["node"]
CMD ["apps/router/dist/main.js"]
