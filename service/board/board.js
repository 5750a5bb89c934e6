// The live board: the network's connectors, each queue with its offers, the latest events, projection lag,
// and the webhook endpoints that need attention.
// One stream of the whole log (the admin SSE endpoint, read with fetch so the token can travel in a header,
// which EventSource cannot do) tells which locations to redraw; their state comes from the public read API.
// Endpoint health is not in the log: it is polled (and looked at again soon after ticket events, since
// those are what is delivered).
"use strict";

const TOKEN_KEY = "chargeline.adminToken";
const MAX_EVENTS = 30;
const ENDPOINTS_EVERY_MS = 5000;
const ENDPOINTS_AFTER_TICKET_MS = 1500;
const state = { token: null, lastEventId: null, locations: new Map(), stationLocation: new Map(), dirty: new Map() };
const endpoints = { timer: null, dueAt: Infinity, loading: false, loadedAt: null, drawn: null };
let redrawTimer = null;

function tokenFromPage() {
  const match = location.hash.match(/token=([^&]+)/);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname); // keep the token out of the address bar
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${state.token}` } });
  if (response.status === 401) { showLogin("That token was refused."); throw new Error("unauthorized"); }
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

function showLogin(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  document.getElementById("board").hidden = true;
  const form = document.getElementById("login");
  form.hidden = false;
  setConnection("signed-out", message || "sign in with the admin token");
}

function setConnection(mode, text) {
  const node = document.getElementById("connection");
  node.dataset.state = mode;
  node.textContent = text;
}

// --- drawing -------------------------------------------------------------------------------------

function connectorClass(station, connector) {
  if (!station.online) return "offline";
  if (!station.active || !connector.active) return "unavailable";
  if (connector.offerable) return "offerable";
  if (connector.status === "faulted") return "faulted";
  if (connector.status === "unavailable" || connector.status === "reserved") return "unavailable";
  return "occupied";
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function drawLocation(id) {
  const entry = state.locations.get(id);
  if (!entry) return;
  let card = document.querySelector(`[data-location="${CSS.escape(id)}"]`);
  if (!card) {
    card = document.getElementById("location-template").content.firstElementChild.cloneNode(true);
    card.dataset.location = id;
    document.getElementById("locations").append(card);
  }
  const { location: site, queue } = entry;
  const offered = new Set((queue ? queue.line : []).filter((t) => t.offer)
    .map((t) => `${t.offer.chargestation_id}/${t.offer.connector_id}`));
  card.querySelector(".name").textContent = site.name || id;
  const stations = card.querySelector(".stations");
  stations.replaceChildren(...site.chargestations.map((station) => {
    const box = el("div", `station${station.online ? "" : " offline"}`);
    box.dataset.station = station.id;
    box.append(el("div", "station-name", `${station.id}${station.online ? "" : " · offline"}`));
    const list = el("div", "connectors");
    for (const connector of station.connectors) {
      let kind = connectorClass(station, connector);
      if (kind === "offerable" && offered.has(`${station.id}/${connector.id}`)) kind = "offered";
      const chip = el("span", `connector ${kind}`, `${connector.type || "?"} ${connector.power_kw ?? ""}kW`);
      chip.dataset.connector = connector.id;
      chip.dataset.kind = kind;
      chip.title = `${connector.id}: ${connector.status}`;
      list.append(chip);
    }
    box.append(list);
    return box;
  }));
  const counts = queue ? queue.counts : null;
  card.querySelector(".queue-summary").textContent = counts
    ? `${counts.waiting} waiting · ${counts.offered} offered · ${counts.held} held${queue.paused ? " · paused" : ""}`
    : "";
  const tickets = card.querySelector(".tickets");
  if (!queue || queue.line.length === 0) {
    tickets.replaceChildren(el("li", "empty", "nobody waiting"));
    return;
  }
  tickets.replaceChildren(...queue.line.map((entry) => {
    const item = el("li");
    item.dataset.status = entry.status;
    item.append(el("span", `status ${entry.status}`, entry.status), " ");
    const wants = entry.requirements.connector_types.join("/") || "any connector";
    item.append(el("span", "wants", wants));
    if (entry.offer) {
      const until = entry.status === "held" ? entry.offer.hold_until : entry.offer.respond_by;
      item.append(` → ${entry.offer.connector_id} `);
      const clock = el("span", "countdown");
      clock.dataset.until = until;
      item.append(clock);
    } else {
      item.append(el("span", "countdown", ` · waited ${Math.round(entry.waited_s / 60)} min`));
    }
    return item;
  }));
  tickCountdowns();
}

function tickCountdowns() {
  for (const clock of document.querySelectorAll(".countdown[data-until]")) {
    const left = Math.max(0, Math.round((Date.parse(clock.dataset.until) - Date.now()) / 1000));
    clock.textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")} left`;
  }
}

function drawEvent(event) {
  const list = document.getElementById("events");
  const item = el("li");
  item.append(el("span", "type", event.type), " ");
  item.append(el("span", "meta", `#${event.position} ${event.stream_id} ${event.recorded_at.slice(11, 19)}`));
  list.prepend(item);
  while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
}

async function drawProjections() {
  try {
    const status = await api("/v1/admin/projections");
    const rows = status.projections.map((p) => {
      const row = el("tr");
      row.append(el("td", "", p.name), el("td", p.lag > 100 ? "lagging" : "", `lag ${p.lag}`));
      return row;
    });
    document.querySelector("#projections tbody").replaceChildren(...rows);
  } catch (error) { /* shown as stale; the next round tries again */ }
}

// --- webhook endpoints ---------------------------------------------------------------------------

function forHowLong(since) {
  const seconds = Math.max(0, Math.floor((Date.now() - since) / 1000));
  if (seconds < 60) return `for ${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `for ${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `for ${hours} h ${minutes % 60} min`;
  return `for ${Math.floor(hours / 24)} days`;
}

function tickSince() {
  for (const clock of document.querySelectorAll("time.since[datetime]")) {
    const since = Date.parse(clock.dateTime);
    if (!Number.isNaN(since)) clock.textContent = forHowLong(since);
  }
}

function detail(term, className, value) {
  const row = el("div");
  row.append(el("dt", "", term));
  const description = el("dd", className);
  description.append(value);
  row.append(description);
  return row;
}

function drawEndpoint(endpoint) {
  const health = endpoint.health === "disabled" ? "disabled" : "failing";
  const item = el("li", `endpoint ${health}`);
  item.dataset.subscription = endpoint.id;
  item.dataset.health = health;
  const head = el("div", "endpoint-head");
  head.append(el("span", `badge ${health}`, health), " ", el("span", "url", endpoint.url));
  item.append(head);
  if (endpoint.description) item.append(el("p", "description", endpoint.description));
  const details = el("dl");
  const since = Date.parse(endpoint.failing_since);
  if (health === "failing" && !Number.isNaN(since)) {
    const clock = el("time", "since", forHowLong(since));
    clock.dateTime = endpoint.failing_since;
    clock.title = `failing since ${new Date(since).toLocaleString()}`;
    details.append(detail("Failing", "", clock));
  }
  if (health === "disabled") details.append(detail("Reason", "reason", endpoint.disabled_reason || "not given"));
  if (endpoint.last_error) {
    const row = detail("Last error", "last-error", endpoint.last_error);
    row.querySelector("dd").title = endpoint.last_error; // the text may be cut short: all of it on hover
    details.append(row);
  }
  details.append(detail("Pending", "pending", String(endpoint.pending_deliveries ?? 0)));
  item.append(details);
  return item;
}

function setSummary(text) {
  const summary = document.getElementById("endpoints-summary");
  if (summary.textContent !== text) summary.textContent = text; // a live region: speak only of changes
}

function drawEndpoints(all) {
  const attention = all.filter((s) => s.health === "failing" || s.health === "disabled");
  const panel = document.getElementById("endpoints-panel");
  panel.dataset.state = attention.length ? "attention" : "healthy";
  const total = `${all.length} endpoint${all.length === 1 ? "" : "s"}`;
  if (all.length === 0) setSummary("No endpoints");
  else if (attention.length === 0) setSummary(all.length === 1 ? "1 endpoint healthy" : `All ${total} healthy`);
  else setSummary(`${attention.length} of ${total} need${attention.length === 1 ? "s" : ""} attention`);
  const drawn = JSON.stringify(attention);
  if (drawn === endpoints.drawn) return; // unchanged: keep the nodes (and any text being selected)
  endpoints.drawn = drawn;
  document.getElementById("endpoints").replaceChildren(...attention.map(drawEndpoint));
}

function showEndpointsStale() {
  document.getElementById("endpoints-panel").dataset.state = "stale";
  setSummary(endpoints.loadedAt
    ? `Could not refresh; as of ${endpoints.loadedAt.toLocaleTimeString()}. Retrying…`
    : "Could not load the endpoints. Retrying…");
}

function scheduleEndpoints(delayMs) {
  const at = Date.now() + delayMs;
  if (endpoints.timer !== null && endpoints.dueAt <= at) return; // already due as soon
  clearTimeout(endpoints.timer);
  endpoints.dueAt = at;
  endpoints.timer = setTimeout(refreshEndpoints, delayMs);
}

async function refreshEndpoints() {
  endpoints.timer = null;
  if (document.getElementById("board").hidden) return; // signed out: signing in starts again
  if (document.hidden) return; // a hidden tab does not poll: becoming visible looks again
  if (endpoints.loading) { scheduleEndpoints(ENDPOINTS_AFTER_TICKET_MS); return; }
  endpoints.loading = true;
  try {
    const all = await api("/v1/admin/subscriptions");
    if (!Array.isArray(all)) throw new Error("subscriptions: not a list");
    endpoints.loadedAt = new Date();
    drawEndpoints(all);
  } catch (error) {
    showEndpointsStale();
  } finally {
    endpoints.loading = false;
  }
  scheduleEndpoints(ENDPOINTS_EVERY_MS);
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && state.token) scheduleEndpoints(0);
});

// --- data ----------------------------------------------------------------------------------------

async function loadLocation(id, atLeast = 0) {
  // The read models may not have applied the event that made us look yet: ask again until they have.
  // A site seen for the first time may not be in them at all yet (404): the same wait.
  let site = null;
  for (let attempt = 0; attempt < 30; attempt++) {
    site = await api(`/v1/locations/${encodeURIComponent(id)}`).catch(() => null);
    if (site && site.as_of_position >= atLeast) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  if (!site) return;
  const queue = await api(`/v1/locations/${encodeURIComponent(id)}/queue`).catch(() => null);
  for (const station of site.chargestations) state.stationLocation.set(station.id, id);
  state.locations.set(id, { location: site, queue });
  drawLocation(id);
}

async function loadAll() {
  // Returns the position the read models had reached: the stream resumes after it, so whatever they
  // had not applied yet arrives as events and redraws its location.
  const { as_of_position: asOf, locations } = await api("/v1/locations");
  await Promise.all(locations.map((site) => loadLocation(site.id)));
  return asOf;
}

function locationOf(event) {
  if (event.stream_id.startsWith("queue-")) return event.stream_id.slice("queue-".length);
  if (event.stream_id.startsWith("location-")) return event.data._id;
  if (event.data && typeof event.data.location === "string") return event.data.location;
  if (event.data && state.stationLocation.has(event.data.chargestation)) {
    return state.stationLocation.get(event.data.chargestation);
  }
  return null;
}

function markDirty(id, position) {
  state.dirty.set(id, Math.max(position, state.dirty.get(id) || 0));
  if (redrawTimer) return;
  redrawTimer = setTimeout(async () => { // a burst of events redraws each location once
    redrawTimer = null;
    const dirty = [...state.dirty];
    state.dirty.clear();
    await Promise.all(dirty.map(([id, position]) => loadLocation(id, position).catch(() => null)));
  }, 150);
}

// --- the live stream -----------------------------------------------------------------------------

function parseSse(buffer, onMessage) {
  const parts = buffer.split(/\r?\n\r?\n/);
  const rest = parts.pop();
  for (const block of parts) {
    const message = { data: null, event: null, id: null, retry: null };
    for (const line of block.split(/\r?\n/)) {
      const [field, ...value] = line.split(":");
      const text = value.join(":").replace(/^ /, "");
      if (field === "data") message.data = message.data === null ? text : `${message.data}\n${text}`;
      else if (field === "event") message.event = text;
      else if (field === "id") message.id = text;
      else if (field === "retry") message.retry = Number(text);
    }
    onMessage(message);
  }
  return rest;
}

async function follow() {
  let retryMs = 1000;
  for (;;) {
    try {
      if (!state.lastEventId) state.lastEventId = String(await loadAll()); // first: draw everything once
      const headers = { Authorization: `Bearer ${state.token}`, "Last-Event-ID": state.lastEventId };
      const response = await fetch("/v1/admin/events/stream", { headers });
      if (response.status === 401) { showLogin("That token was refused."); return; }
      if (!response.ok) throw new Error(`stream: ${response.status}`);
      setConnection("live", "live");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer = parseSse(buffer + value, (message) => {
          if (message.retry) retryMs = message.retry;
          if (message.id) state.lastEventId = message.id;
          if (message.data === null) return; // keep-alive
          const event = JSON.parse(message.data);
          drawEvent(event);
          const id = locationOf(event);
          if (id) markDirty(id, event.position);
          if (event.type.startsWith("ticket.")) scheduleEndpoints(ENDPOINTS_AFTER_TICKET_MS);
        });
      }
    } catch (error) {
      // the server restarted or the network dropped: retry below
    }
    setConnection("retrying", "reconnecting…");
    await new Promise((resolve) => setTimeout(resolve, retryMs));
  }
}

function start(token) {
  state.token = token;
  document.getElementById("login").hidden = true;
  document.getElementById("board").hidden = false;
  setInterval(() => { tickCountdowns(); tickSince(); }, 1000);
  scheduleEndpoints(0);
  drawProjections();
  setInterval(drawProjections, 2000);
  follow();
}

document.getElementById("login").addEventListener("submit", (submitted) => {
  submitted.preventDefault();
  const token = document.getElementById("token").value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  start(token);
});

const saved = tokenFromPage();
if (saved) start(saved); else showLogin();
