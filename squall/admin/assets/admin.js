// Squall admin page: listens on the admin socket and draws what the server pushes each second.
// Frames: {context: "admin", event: "hello", server, history, errors} once, then
// {context: "admin", event: "sample", sample, errors} every second (squall/monitor.py).
(() => {
  "use strict";

  const base = document.body.dataset.path;
  const KEEP = 600; // samples kept: ten minutes at one a second
  const COLORS = { blue: "#2563eb", pink: "#db2777", green: "#16a34a", amber: "#d97706", violet: "#7c3aed" };
  let samples = [];
  let server = null;
  let errors = [];

  // -- formatting ---------------------------------------------------------------------------------

  const numberFormats = [0, 1, 2].map(
    (digits) => new Intl.NumberFormat(undefined, { maximumFractionDigits: digits }),
  );
  const num = (n) => (n == null ? "–" : numberFormats[n < 10 ? 2 : n < 100 ? 1 : 0].format(n));
  const ms = (v) => {
    if (v == null) return "–";
    if (v < 1) return v.toFixed(2) + " ms";
    if (v < 1000) return v.toFixed(v < 10 ? 2 : 1) + " ms";
    return (v / 1000).toFixed(2) + " s";
  };
  const duration = (seconds) => {
    const s = Math.max(0, Math.floor(seconds));
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${m}m`;
    if (m) return `${m}m ${s % 60}s`;
    return `${s}s`;
  };
  const clock = (epochSeconds) => new Date(epochSeconds * 1000).toLocaleTimeString();
  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  };

  // -- charts -------------------------------------------------------------------------------------

  const charts = [];

  function chart(id, series) {
    const target = document.getElementById(id);
    const opts = {
      width: Math.max(target.clientWidth, 200),
      height: window.matchMedia("(max-width: 640px)").matches ? 150 : 180,
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (u, lo, hi) => [0, Math.max(hi * 1.15, 1)] } },
      axes: [
        { stroke: "#67728a", grid: { stroke: "#eef1f5" }, ticks: { stroke: "#eef1f5" } },
        {
          stroke: "#67728a",
          grid: { stroke: "#eef1f5" },
          ticks: { stroke: "#eef1f5" },
          size: 52,
          values: (u, values) => values.map(num),
        },
      ],
      series: [
        {},
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          fill: s.fill ? s.color + "22" : undefined,
          points: { show: false },
          spanGaps: false,
          value: (u, v) => num(v),
        })),
      ],
    };
    const plot = new uPlot(opts, [[], ...series.map(() => [])], target);
    const entry = { plot, target, read: series.map((s) => s.read) };
    charts.push(entry);
    new ResizeObserver(() => plot.setSize({ width: Math.max(target.clientWidth, 200), height: opts.height })).observe(target);
    return entry;
  }

  chart("chart-connections", [
    { label: "sockets", color: COLORS.blue, fill: true, read: (s) => s.connections.webSocket ?? 0 },
    { label: "HTTP requests in flight", color: COLORS.amber, read: (s) => s.connections.web ?? 0 },
  ]);
  chart("chart-actions", [
    { label: "actions / s", color: COLORS.blue, fill: true, read: (s) => s.actionsPerSecond },
    { label: "errors / s", color: COLORS.pink, read: (s) => s.errorsPerSecond },
  ]);
  chart("chart-latency", [
    { label: "p50", color: COLORS.green, read: (s) => s.p50 },
    { label: "p99", color: COLORS.violet, read: (s) => s.p99 },
  ]);
  chart("chart-frames", [
    { label: "in / s", color: COLORS.blue, fill: true, read: (s) => s.framesIn },
    { label: "out / s", color: COLORS.pink, read: (s) => s.framesOut },
  ]);
  chart("chart-lag", [{ label: "lag", color: COLORS.amber, fill: true, read: (s) => s.loopLagMs }]);
  chart("chart-redis", [{ label: "round trip", color: COLORS.violet, fill: true, read: (s) => s.redisRttMs }]);

  function drawCharts() {
    const xs = samples.map((s) => s.t / 1000);
    for (const { plot, read } of charts) {
      plot.setData([xs, ...read.map((fn) => samples.map(fn))]);
    }
  }

  // -- the numbers --------------------------------------------------------------------------------

  function tile(id, value, sub, level) {
    const node = document.getElementById(id);
    node.querySelector(".value").textContent = value;
    node.querySelector(".sub").textContent = sub;
    node.classList.remove("good", "warn", "bad");
    if (level) node.classList.add(level);
  }

  function drawTiles(s) {
    const processes = s.processes > 1 ? ` · ${s.processes} processes` : "";
    tile("tile-sockets", num(s.connections.webSocket ?? 0), `${s.connections.web ?? 0} HTTP in flight${processes}`);
    tile("tile-actions", num(s.actionsPerSecond), `${s.inFlight} running, ${s.poolBusy} in threads`,
      s.errorsPerSecond > 0 ? "warn" : null);
    tile("tile-latency", ms(s.p99), s.p50 == null ? "no action this second" : `p50 ${ms(s.p50)}`);
    tile("tile-frames", `${num(s.framesIn)} / ${num(s.framesOut)}`, `${num(s.says)} says, ${num(s.deliveries)} sent / s`);
    const lag = s.loopLagMs ?? 0;
    tile("tile-lag", ms(s.loopLagMs), "how late timers ran", lag > 250 ? "bad" : lag > 50 ? "warn" : "good");
    const states = Object.entries(s.redis);
    document.getElementById("card-redis").hidden = states.length === 0;
    if (states.length === 0) {
      tile("tile-redis", "not used", "rooms live in memory");
    } else {
      const healthy = states.every(([state]) => state === "ok");
      const text = states.map(([state, n]) => (n > 1 ? `${n}× ${state}` : state)).join(", ");
      tile("tile-redis", text, `round trip ${ms(s.redisRttMs)}`, healthy ? "good" : "bad");
    }
  }

  function drawActions(s) {
    const body = document.querySelector("#actions tbody");
    const rows = Object.entries(s.actions).sort((a, b) => b[1].rate - a[1].rate);
    if (rows.length === 0) {
      body.replaceChildren(el("tr", { class: "empty" }, el("td", { colspan: "5" }, "No action has run in the last 10 seconds.")));
      return;
    }
    body.replaceChildren(...rows.map(([name, a]) => el("tr", { "data-action": name },
      el("td", { class: "name", title: name }, name),
      el("td", { class: "num rate" }, num(a.rate)),
      el("td", { class: "num" }, ms(a.p50)),
      el("td", { class: "num" }, ms(a.p99)),
      el("td", { class: a.errors > 0 ? "num bad" : "num" }, num(a.errors)),
    )));
  }

  function drawRooms(s) {
    const list = document.getElementById("rooms");
    document.getElementById("rooms-summary").textContent =
      `${s.rooms == null ? "?" : num(s.rooms)} ${s.rooms === 1 ? "room" : "rooms"} · ${num(s.memberships)} ${s.memberships === 1 ? "member" : "members"} here`;
    if (s.topRooms.length === 0) {
      list.replaceChildren(el("li", { class: "empty" }, "No room has members."));
      return;
    }
    const most = Math.max(...s.topRooms.map(([, n]) => n));
    list.replaceChildren(...s.topRooms.map(([room, n]) => {
      const fill = el("div", { class: "fill" });
      fill.style.width = `${Math.max(2, (100 * n) / most)}%`;
      return el("li", { "data-room": room },
        el("span", { class: "room", title: room }, room),
        el("span", { class: "count" }, `${num(n)} ${n === 1 ? "member" : "members"}`),
        el("div", { class: "track" }, fill));
    }));
  }

  function drawErrors(logged) {
    const list = document.getElementById("errors");
    document.getElementById("errors-summary").textContent = logged ? `${num(logged)} logged` : "";
    if (errors.length === 0) {
      list.replaceChildren(el("li", { class: "empty" }, "No error logged since the server started."));
      return;
    }
    list.replaceChildren(...errors.slice().reverse().map((e) => {
      const message = el("span", { class: "message" });
      if (e.ref) message.append(el("span", { class: "ref", title: "reference given to the client" }, e.ref));
      message.append(e.message);
      const item = el("li", {}, el("time", {}, clock(e.time)), message);
      const detail = [e.logger, e.exception].filter(Boolean).join(" · ");
      if (detail) item.append(el("span", { class: "detail" }, detail));
      return item;
    }));
  }

  function drawHeader(s) {
    if (!server) return;
    const processes = s && s.processes > 1 ? ` · ${s.processes} processes` : "";
    document.getElementById("server-name").textContent = server.name;
    document.getElementById("server-meta").textContent =
      `${server.id} · v${server.version} · ${server.env} · up ${duration(Date.now() / 1000 - server.started)}${processes}`;
  }

  function draw() {
    const last = samples[samples.length - 1];
    drawHeader(last);
    drawCharts();
    if (last) {
      drawTiles(last);
      drawActions(last);
      drawRooms(last);
      drawErrors(last.errorsLogged);
    } else {
      drawErrors(0);
    }
  }

  // -- the socket ---------------------------------------------------------------------------------

  const link = document.getElementById("link");
  let backoff = 1000;

  function setLink(state) {
    link.dataset.state = state;
    link.textContent = state;
  }

  function receive(frame) {
    if (frame.context !== "admin") return; // the welcome, replies
    if (frame.event === "hello") {
      server = frame.server;
      samples = frame.history.slice(-KEEP);
      errors = frame.errors;
    } else if (frame.event === "sample") {
      const last = samples[samples.length - 1];
      if (last && frame.sample.t <= last.t) return;
      samples.push(frame.sample);
      if (samples.length > KEEP) samples.splice(0, samples.length - KEEP);
      errors = frame.errors;
    }
    draw();
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + base + "/live");
    socket.onopen = () => {
      backoff = 1000;
      setLink("live");
    };
    socket.onmessage = (event) => receive(JSON.parse(event.data));
    socket.onclose = async () => {
      setLink("reconnecting");
      try {
        // refused for good (the login expired, the token changed): back to the login form
        const page = await fetch(location.pathname, { cache: "no-store" });
        if (page.status === 401) {
          location.reload();
          return;
        }
      } catch (_) {
        // the server is away: keep trying
      }
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 10000);
    };
  }

  draw();
  connect();
})();
