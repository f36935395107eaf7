// modq dashboard: renders /events snapshots. Everything from Kafka is untrusted text, so the
// DOM is built only with createElement/createElementNS and textContent, never as markup.

const CLASSES = ["global_topics", "topic_posts", "private_messages"];
const WATCHDOG_MS = 5000;
const SVG = "http://www.w3.org/2000/svg";

let latest = null;
let lastMessageAt = 0;
let serverLost = false;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function seconds(value) {
  if (value === null || value === undefined) return "–";
  if (value < 60) return `${value.toFixed(value < 10 ? 1 : 0)} s`;
  if (value < 3600) return `${Math.floor(value / 60)} m ${Math.round(value % 60)} s`;
  return `${Math.floor(value / 3600)} h ${Math.round((value % 3600) / 60)} m`;
}

function rate(value) {
  return value === null || value === undefined ? "–" : `${value.toFixed(1)}/s`;
}

function clock(iso) {
  if (!iso) return "never";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "?" : date.toLocaleTimeString();
}

function sparkline(history) {
  const width = 160;
  const height = 36;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "spark");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "arrival and decision rate history");
  const series = [["in_rate", "spark-in"], ["out_rate", "spark-out"]];
  const all = series.flatMap(([key]) => history[key] || []).filter(Number.isFinite);
  const top = Math.max(1, ...all);
  for (const [key, cls] of series) {
    let values = (history[key] || []).filter(Number.isFinite);
    if (values.length === 0) continue;
    if (values.length === 1) values = [values[0], values[0]];
    const step = width / (values.length - 1);
    const points = values
      .map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - (v / top) * (height - 4)).toFixed(1)}`)
      .join(" ");
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", points);
    line.setAttribute("class", cls);
    svg.append(line);
  }
  return svg;
}

function stat(label, field, value, extraClass) {
  return el("div", { class: `stat ${extraClass || ""}` },
    el("span", { class: "label" }, label),
    el("span", { class: "value", "data-field": field }, value));
}

function classCard(view) {
  const card = el("article", {
    class: `class-card${view.stale ? " stale" : ""}${view.breaker_open ? " breaker-tripped" : ""}`,
    "data-queue": view.queue,
  });
  const breaker = view.present ? view.breaker : "unknown";
  card.append(el("header", null,
    el("h3", null, view.queue),
    el("span", { class: `breaker breaker-${breaker}`, "data-field": "breaker", title: "circuit breaker" },
      breaker)));
  if (!view.present) {
    card.append(el("p", { class: "muted" }, "no state published yet"), sparkline(view.history));
    return card;
  }
  card.append(el("div", { class: "stats" },
    stat("length", "length", view.length, "big"),
    stat("oldest wait", "oldest_wait", seconds(view.oldest_wait_seconds)),
    stat("avg wait", "avg_wait", seconds(view.avg_wait_seconds)),
    stat("score", "score", view.score.toFixed(2)),
    stat("workers", "workers", `${view.workers_assigned} (${view.min_workers}–${view.max_workers})`),
    stat("arrivals", "in_rate", rate(view.in_rate)),
    stat("decisions", "out_rate", rate(view.out_rate))));
  card.append(sparkline(view.history));
  card.append(el("p", { class: "legend muted" },
    el("span", { class: "key-in" }, "arrivals"), " / ",
    el("span", { class: "key-out" }, "decisions"),
    ` · as of ${clock(view.updated_at)}`,
    view.stale ? el("span", { class: "stale-tag" }, " stale") : null));
  return card;
}

function renderClasses(classes) {
  const byName = new Map(classes.map((c) => [c.queue, c]));
  document.getElementById("classes").replaceChildren(
    ...CLASSES.map((name) => classCard(byName.get(name) || { queue: name, present: false, history: {} })));
}

function renderWorkers(pool) {
  const body = document.querySelector("#workers tbody");
  const meta = document.getElementById("workers-meta");
  if (!pool) {
    body.replaceChildren(el("tr", null, el("td", { colspan: 5, class: "muted" }, "no worker pool published yet")));
    meta.textContent = "";
    return;
  }
  meta.textContent = `${pool.items.length} known · as of ${clock(pool.updated_at)}${pool.stale ? " · stale" : ""}`;
  body.replaceChildren(...pool.items.map((w) => el("tr", {
    class: w.silent ? "silent" : "",
    "data-worker": w.worker_id,
  },
  el("td", null, w.worker_id, w.silent ? el("span", { class: "badge badge-bad" }, "silent") : null),
  el("td", null, w.queue_class || "idle"),
  el("td", null, w.state),
  el("td", { class: "num" }, w.in_flight),
  el("td", { class: "num" }, seconds(w.heartbeat_age_seconds)))));
}

function verdictText(verdicts) {
  const parts = Object.entries(verdicts || {}).map(([k, v]) => `${k} ${v}`);
  return parts.length ? parts.join(" · ") : "–";
}

function renderKeys(keys) {
  const body = document.querySelector("#key-queues tbody");
  const needle = document.getElementById("key-filter").value.trim().toLowerCase();
  const rows = keys.items.filter((k) => k.queue.toLowerCase().includes(needle));
  document.getElementById("key-queues").dataset.shown = String(rows.length);
  document.getElementById("keys-meta").textContent =
    `${rows.length} shown of ${keys.total} with state${keys.matching > keys.items.length ? ` (top ${keys.items.length} sent)` : ""}`;
  if (rows.length === 0) {
    body.replaceChildren(el("tr", null, el("td", { colspan: 5, class: "muted" },
      needle ? "no queue matches the filter" : "no per-key queue has pending work")));
    return;
  }
  body.replaceChildren(...rows.map((k) => el("tr", { class: k.stuck ? "stuck" : "", "data-key": k.queue },
    el("td", { class: "mono" }, k.queue),
    el("td", null, k.queue_class),
    el("td", { class: "num" }, k.pending),
    el("td", { class: "num" }, seconds(k.oldest_wait_seconds)),
    el("td", null, verdictText(k.verdicts)))));
}

function moveText(move) {
  return `${move.worker_id}: ${move.from_class || "idle"} → ${move.to_class || "idle"}`;
}

function renderController(controller) {
  const meta = document.getElementById("controller-meta");
  const allocation = document.getElementById("allocation");
  const list = document.getElementById("decisions");
  if (!controller) {
    meta.textContent = "";
    allocation.replaceChildren(el("p", { class: "muted" }, "no controller decision published yet"));
    list.replaceChildren();
    return;
  }
  const current = controller.current;
  if (current) {
    meta.textContent = `${current.controller_id}${current.leader ? " (leader)" : ""} · confirmed ${clock(current.updated_at)}${current.stale ? " · stale" : ""}`;
    allocation.replaceChildren(el("dl", { class: "allocation" },
      ...Object.entries(current.allocation).flatMap(([cls, ids]) => [
        el("dt", null, cls), el("dd", null, ids.length ? ids.join(", ") : "none")])));
  } else {
    meta.textContent = "";
    allocation.replaceChildren();
  }
  list.replaceChildren(...controller.decisions.map((d) => el("li", { class: "decision" },
    el("div", { class: "when muted" }, `${clock(d.decided_at)} · ${d.controller_id}`),
    d.moves.length ? el("ul", { class: "moves" }, ...d.moves.map((m) => el("li", null,
      el("strong", null, moveText(m)), " ",
      el("span", { class: "rule" }, m.rule), " ",
      el("span", { class: "reason" }, m.reason)))) : el("p", { class: "muted" }, "no moves"),
    d.reasons.length ? el("ul", { class: "reasons" }, ...d.reasons.map((r) => el("li", null, r))) : null)));
}

function renderFeed(feed) {
  const status = serverLost ? "disconnected" : feed.status;
  document.body.dataset.status = status;
  document.getElementById("feed-status").textContent = status;
  document.getElementById("feed-message").textContent = serverLost
    ? "No updates from the dashboard server; reconnecting… the numbers below are not current"
    : feed.message;
  const lag = feed.lag === null ? "" : ` · lag ${feed.lag}`;
  const invalid = feed.invalid_records ? ` · ${feed.invalid_records} invalid record(s) ignored` : "";
  document.getElementById("feed-detail").textContent =
    `last update ${clock(feed.last_update_at)} · ${feed.records} records${lag}${invalid}`;
}

function render() {
  if (!latest) return;
  renderFeed(latest.feed);
  renderClasses(latest.classes);
  renderWorkers(latest.workers);
  renderKeys(latest.key_queues);
  renderController(latest.controller);
}

function connect() {
  const source = new EventSource("/events");
  source.onmessage = (event) => {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    latest = data;
    lastMessageAt = Date.now();
    serverLost = false;
    render();
  };
  source.onerror = () => {
    serverLost = true;
    if (latest) renderFeed(latest.feed);
    else {
      document.body.dataset.status = "disconnected";
      document.getElementById("feed-status").textContent = "disconnected";
      document.getElementById("feed-message").textContent = "Cannot reach the dashboard server; retrying…";
    }
  };
}

setInterval(() => {
  if (latest && !serverLost && Date.now() - lastMessageAt > WATCHDOG_MS) {
    serverLost = true;
    renderFeed(latest.feed);
  }
}, 1000);

document.getElementById("key-filter").addEventListener("input", () => {
  if (latest) renderKeys(latest.key_queues);
});

connect();
