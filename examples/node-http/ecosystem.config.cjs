// PM2 config for the same app, used by scripts/bench/zero-downtime.ts to compare
// `pm2 reload` with `hr serve`. Cluster mode: PM2's God daemon holds the port
// (node:cluster) and the app's `server.listen({ port })` is shared by the
// instances. `wait_ready`: a new instance counts as up when it calls
// `process.send("ready")` (server.mjs does, once listening); PM2 then sends the
// old one SIGINT (the app drains on SIGINT like on SIGTERM) and SIGKILLs it
// after kill_timeout.
//
//   PORT=8080 pm2 start ecosystem.config.cjs && pm2 reload node-http
module.exports = {
  apps: [
    {
      name: "node-http",
      script: "server.mjs",
      cwd: __dirname,
      exec_mode: "cluster",
      instances: Number(process.env.PM2_INSTANCES || 2),
      wait_ready: true,
      listen_timeout: 10000, // ms to wait for "ready" (PM2 then treats the instance as up anyway)
      kill_timeout: 10000, // ms between SIGINT and SIGKILL for the old instance
      autorestart: true,
      env: { PORT: process.env.PORT || "8080" },
    },
  ],
};
