"use strict";
// The script of both pages: the dashboard (index.html) and the API page
// (api.html). No framework and no build step. Every text goes in through
// textContent (never innerHTML), and there are no inline handlers or styles,
// so a strict Content-Security-Policy holds.

const $ = (sel, root = document) => root.querySelector(sel);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

if ($("#api")) apiPage();
else if ($("#sections")) dashboard();

// ---- the dashboard -----------------------------------------------------------

function dashboard() {
  const TOKEN_KEY = "majortom.token";
  const HISTORY_MAX = 120;
  const SVG = "http://www.w3.org/2000/svg";
  const entities = new Map(); // id → { data, history, card, parts }
  const sims = new Map(); // input id → { high, inverted, pending }: see flip()
  let health = null;
  let startedAt = 0; // Date.now() when the agent started, from uptime_s
  let source = null;

  const storage = {
    get() { try { return localStorage.getItem(TOKEN_KEY); } catch { return null; } },
    set(v) { try { localStorage.setItem(TOKEN_KEY, v); } catch { /* private mode */ } },
    forget() { try { localStorage.removeItem(TOKEN_KEY); } catch { /* private mode */ } },
  };
  const canWrite = () => !!health && !health.read_only && !!storage.get();

  function duration(s) {
    s = Math.max(0, Math.floor(s));
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    if (d) return `${d} d ${h} h`;
    if (h) return `${h} h ${m} min`;
    if (m) return `${m} min ${s % 60} s`;
    return `${s} s`;
  }

  function ago(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return `${Math.floor(s / 86400)} d ago`;
  }

  // -- header --

  function renderHealth(h) {
    health = h;
    startedAt = Date.now() - h.uptime_s * 1000;
    const name = h.name || h.node;
    $("#name").textContent = name;
    document.title = `${name} · majortom`;
    const mqtt = $("#mqtt");
    const m = h.mqtt || {};
    mqtt.textContent = !m.enabled ? "MQTT disabled" : m.connected ? "MQTT connected" : "MQTT disconnected";
    mqtt.className = "badge" + (!m.enabled ? "" : m.connected ? " ok" : " bad");
    mqtt.title = m.broker ? `broker ${m.broker}, ${m.connects} connects, ${m.published} published` : "";
    $("#gpio").hidden = !h.gpio;
    $("#gpio").textContent = `GPIO ${h.gpio}`;
    $("#sim").hidden = !h.sim;
    $("#readonly").hidden = !h.read_only;
    if (h.read_only) $("#token-form").hidden = true;
    renderAbout();
    updateControls();
  }

  function renderAbout() {
    if (!health) return;
    const up = duration((Date.now() - startedAt) / 1000);
    $("#about").textContent = `${health.model} · majortom ${health.version} · up ${up}`;
  }

  function updateControls() {
    const ro = !health || health.read_only;
    const unlock = $("#unlock");
    unlock.hidden = ro;
    unlock.textContent = storage.get() ? "Lock controls" : "Unlock controls";
    const write = canWrite();
    for (const b of document.querySelectorAll("button.toggle, button.flip, button.press")) {
      if (!b.classList.contains("busy")) b.disabled = !write;
      b.title = ro ? "read-only agent" : write ? "" : "unlock controls first";
    }
  }

  function showTokenForm(message, isError) {
    const msg = $("#token-msg");
    msg.textContent = message;
    msg.classList.toggle("error", !!isError);
    $("#token-form").hidden = false;
    $("#token").focus();
  }

  $("#unlock").addEventListener("click", () => {
    if (storage.get()) {
      storage.forget();
      updateControls();
    } else if ($("#token-form").hidden) {
      showTokenForm("The token is kept in this browser.");
    } else {
      $("#token-form").hidden = true;
    }
  });

  $("#token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = $("#token").value.trim();
    if (!value) return;
    storage.set(value);
    $("#token").value = "";
    $("#token-form").hidden = true;
    updateControls();
  });

  // -- cards --

  function makeCard(e) {
    const card = el("article", "card");
    card.dataset.entity = e.id;
    const parts = {
      name: el("span", "name"),
      tag: el("span", "tag"),
      value: el("div", "value"),
      spark: null,
      foot: el("div", "foot"),
      age: el("span", "age"),
      press: null,
      control: null,
    };
    const head = el("div", "head");
    head.append(parts.name, parts.tag);
    parts.foot.append(parts.age);
    card.append(head, parts.value, parts.foot);
    if (e.component === "button") {
      const b = el("button", "press", e.name);
      b.type = "button";
      b.dataset.button = e.id;
      b.addEventListener("click", () => press(e.id));
      parts.control = b;
    } else if (e.component === "switch" || e.component === "light" || e.component === "fan") {
      const b = el("button", "toggle");
      b.type = "button";
      b.dataset.output = e.id;
      b.setAttribute("aria-label", `Toggle ${e.name}`);
      b.addEventListener("click", () => toggle(e.id));
      parts.control = b;
    } else if (e.group === "inputs" && health && health.sim) {
      const b = el("button", "flip", "flip");
      b.type = "button";
      b.dataset.input = e.id;
      b.addEventListener("click", () => flip(e.id));
      parts.control = b;
    }
    if (parts.control) parts.foot.append(parts.control);
    if (e.group === "commands") {
      // The last run's output, fetched when a run ends.
      parts.output = el("details", "output");
      parts.output.append(el("summary", "", "last output"), el("pre"));
      card.append(parts.output);
    }
    return { card, parts };
  }

  function renderEntity(entry) {
    const { data: e, parts, card } = entry;
    parts.name.textContent = e.name;
    parts.name.title = e.id;
    // A button has no state: its card is the button.
    const level = (e.component === "light" || e.component === "fan") && typeof e.value === "number";
    const unit = level ? "%" : e.unit;
    const text = e.component === "button" ? "" : e.state == null ? "–" : unit ? `${e.state} ${unit}` : e.state;
    parts.value.textContent = text;
    parts.value.dataset.state = e.state ?? "";
    parts.value.dataset.class = e.device_class ?? "";
    if (typeof e.value === "number" || entry.history.length) {
      if (!parts.spark) {
        parts.spark = document.createElementNS(SVG, "svg");
        parts.spark.setAttribute("class", "spark");
        parts.spark.setAttribute("viewBox", "0 0 100 30");
        parts.spark.setAttribute("preserveAspectRatio", "none");
        parts.spark.setAttribute("aria-hidden", "true");
        const area = document.createElementNS(SVG, "path");
        area.setAttribute("class", "area");
        parts.spark.append(area, document.createElementNS(SVG, "path"));
        card.insertBefore(parts.spark, parts.foot);
      }
      drawSpark(parts.spark, entry.history);
    }
    if (e.group === "commands") renderCommand(entry);
    if (parts.control && parts.control.classList.contains("toggle")) {
      // A PWM output's state is its level in percent: on above 0.
      parts.control.setAttribute("aria-pressed", String(e.state === "ON" || Number(e.state) > 0));
    }
    renderStatus(entry, Date.now());
  }

  // A command: a spinner while it runs, its last output once it ended.
  function renderCommand(entry) {
    const { data: e, parts } = entry;
    const attributes = e.attributes || {};
    if (parts.control) parts.control.classList.toggle("running", !!attributes.running);
    const lastRun = attributes.last_run || "";
    if (lastRun && lastRun !== entry.shownRun) {
      entry.shownRun = lastRun;
      fetch(`/api/commands/${encodeURIComponent(e.id)}`).then((res) => res.json()).then((command) => {
        const run = command.last_run;
        if (!run) return;
        parts.output.firstChild.textContent = `last output: ${run.ended}, ${run.duration_ms} ms`;
        parts.output.lastChild.textContent = run.stdout + run.stderr;
      }).catch(() => {});
    }
  }

  // What changes with the clock alone: age, staleness, a passing error.
  function renderStatus(entry, now) {
    const { data: e, parts, card } = entry;
    const updated = e.last_update ? Date.parse(e.last_update) : NaN;
    const stale = e.available && e.expire_after_s != null && !isNaN(updated) &&
      now - updated > e.expire_after_s * 1000;
    card.classList.toggle("unavailable", !e.available);
    card.classList.toggle("stale", stale);
    // A binary sensor's class says what ON means (door: open); a number's
    // unit says it already.
    const kind = e.component === "binary_sensor" && e.device_class !== "problem" ? e.device_class : "";
    parts.tag.textContent = !e.available ? "unavailable" : stale ? "stale" : kind || "";
    if (entry.error && now < entry.errorUntil) {
      parts.age.textContent = entry.error;
      parts.age.className = "age err";
    } else {
      entry.error = null;
      const lastRun = e.attributes && e.attributes.last_run ? Date.parse(e.attributes.last_run) : NaN;
      if (e.group === "commands") {
        const attributes = e.attributes || {};
        parts.age.textContent = attributes.running ? "running…" : attributes.last_run || "not run yet";
      } else if (e.group === "automations") {
        // An automation's switch says whether it is on; when it last ran
        // is what its owner wants to know.
        parts.age.textContent = isNaN(lastRun) ? "not run yet" : `ran ${ago(now - lastRun)}`;
      } else if (e.component === "button") {
        parts.age.textContent = "";
      } else {
        parts.age.textContent = isNaN(updated) ? "no value yet" : ago(now - updated);
      }
      parts.age.className = "age";
    }
  }

  function drawSpark(svg, points) {
    const [area, line] = svg.children;
    if (!points.length) {
      area.setAttribute("d", "");
      line.setAttribute("d", "");
      return;
    }
    const t0 = points[0][0], span = points[points.length - 1][0] - t0;
    let lo = Infinity, hi = -Infinity;
    for (const p of points) { lo = Math.min(lo, p[1]); hi = Math.max(hi, p[1]); }
    // At least 2 % of the value's size, so that noise in the last digit
    // does not draw a cliff.
    const pad = Math.max(0, Math.max(Math.abs(hi), Math.abs(lo)) * 0.02 - (hi - lo)) / 2;
    lo -= pad;
    hi += pad;
    const range = hi - lo;
    const x = (t) => (span > 0 ? ((t - t0) / span) * 100 : 0).toFixed(2);
    const y = (v) => (range > 0 ? 27 - ((v - lo) / range) * 24 : 15).toFixed(2);
    let d = points.map((p, i) => `${i ? "L" : "M"}${x(p[0])},${y(p[1])}`).join("");
    if (points.length === 1 || span === 0) d = `M0,${y(points[0][1])}L100,${y(points[0][1])}`;
    line.setAttribute("d", d);
    area.setAttribute("d", `${d}L100,30L0,30Z`);
  }

  function section(group) {
    return $(`section[data-group="${CSS.escape(group)}"]`) || $('section[data-group="system"]');
  }

  function addEntity(e, history) {
    const entry = { data: e, history: (history || []).slice(-HISTORY_MAX), ...makeCard(e) };
    entities.set(e.id, entry);
    const s = section(e.group);
    $(".grid", s).append(entry.card);
    s.hidden = false;
    renderEntity(entry);
    return entry;
  }

  function onSnapshot(snap) {
    // A snapshot (first, after a reconnect, or after falling behind) replaces
    // everything: cards are rebuilt from it, so none is ever doubled.
    entities.clear();
    for (const s of document.querySelectorAll("#sections section")) {
      $(".grid", s).replaceChildren();
      s.hidden = true;
    }
    renderHealth(snap.health);
    for (const e of snap.entities) addEntity(e, e.history);
    loadFleet();
    updateControls();
    $("#banner").hidden = true;
    document.body.classList.remove("offline");
  }

  function onEntity(e) {
    const entry = entities.get(e.id);
    if (!entry) {
      addEntity(e, []);
      updateControls();
      return;
    }
    const before = entry.data;
    entry.data = e;
    // Availability changes come as entity events too; only a new timestamp
    // is a new sample for the sparkline.
    if (typeof e.value === "number" && e.last_update && e.last_update !== before.last_update) {
      entry.history.push([Date.parse(e.last_update), e.value]);
      if (entry.history.length > HISTORY_MAX) entry.history.splice(0, entry.history.length - HISTORY_MAX);
    }
    const sim = sims.get(e.id);
    if (sim && sim.pending != null && e.state !== before.state) {
      sim.inverted = (e.state === "ON") !== sim.pending;
      sim.pending = null;
    }
    renderEntity(entry);
  }

  function onPress(p) {
    const entry = entities.get(p.id);
    if (!entry) return;
    const { card, parts } = entry;
    if (!parts.press) {
      parts.press = el("span", "press");
      parts.foot.insertBefore(parts.press, parts.control);
    }
    parts.press.textContent = `${p.press} press`;
    parts.press.hidden = false;
    card.classList.add("flash");
    clearTimeout(entry.pressTimer);
    entry.pressTimer = setTimeout(() => {
      card.classList.remove("flash");
      parts.press.hidden = true;
    }, 1500);
  }

  // -- writes --

  function cardError(id, message) {
    const entry = entities.get(id);
    if (!entry) return;
    entry.error = message;
    entry.errorUntil = Date.now() + 5000;
    renderStatus(entry, Date.now());
  }

  async function write(id, method, path, body) {
    const token = storage.get();
    if (!token) {
      showTokenForm("Enter the token to use the controls.");
      return;
    }
    const button = entities.get(id)?.parts.control;
    if (button) { button.classList.add("busy"); button.disabled = true; }
    try {
      const res = await fetch(path, {
        method,
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
        body: JSON.stringify(body),
      });
      if (res.status === 401) {
        storage.forget();
        showTokenForm("The agent refused the token: enter it again.", true);
      } else if (!res.ok) {
        const reply = await res.json().catch(() => ({}));
        cardError(id, reply.error || `HTTP ${res.status}`);
      }
      return res.ok;
    } catch {
      cardError(id, "cannot reach the agent");
    } finally {
      if (button) button.classList.remove("busy");
      updateControls();
    }
  }

  // A command refuses a second run while one runs (409): say so on its card.
  function command(id, action) {
    write(id, "POST", `/api/commands/${encodeURIComponent(id)}`, { action });
  }

  function toggle(id) {
    const e = entities.get(id)?.data;
    if (e && e.group === "commands") return command(id, e.state === "ON" ? "off" : "on");
    write(id, "POST", `/api/outputs/${encodeURIComponent(id)}`, { state: "TOGGLE" });
  }

  function press(id) {
    if (entities.get(id)?.data.group === "commands") return command(id, "once");
    write(id, "POST", `/api/outputs/${encodeURIComponent(id)}`, { state: "PRESS" });
  }

  // Flipping a simulated input. The API sets the pin's raw level, and the
  // page knows neither whether the input is inverted (ON when low) nor where
  // its resistor pulls it, so it keeps its own idea of each pin's level. At
  // first it assumes the pin rests high (the default pull-up), so the first
  // flip drives it low: that turns a pulled-up button (inverted) ON and a
  // pulled-up plain input OFF; a pulled-down input needs one more click.
  // From the first change after a flip it learns whether the input is
  // inverted, and from then on sends the level that gives the opposite of
  // the state shown, even if something else moved the pin meanwhile.
  function flip(id) {
    const entry = entities.get(id);
    if (!entry) return;
    const sim = sims.get(id) || { high: true, inverted: null, pending: null };
    sims.set(id, sim);
    const high = sim.inverted == null ? !sim.high : (entry.data.state !== "ON") !== sim.inverted;
    sim.high = high;
    sim.pending = high;
    write(id, "PUT", `/api/sim/inputs/${encodeURIComponent(id)}`, { high });
  }

  // -- the live feed --

  function listen(name, handler) {
    source.addEventListener(name, (ev) => {
      let data;
      try { data = JSON.parse(ev.data); } catch { return; }
      handler(data);
    });
  }

  function connect() {
    source = new EventSource("/api/events");
    listen("snapshot", onSnapshot);
    listen("entity", onEntity);
    listen("press", onPress);
    listen("health", renderHealth);
    listen("fleet", onFleet);
    listen("fleet_node", (n) => { fleet.nodes.set(n.id, n); renderFleet(); });
    listen("fleet_gone", (n) => { fleet.nodes.delete(n.id); renderFleet(); });
    source.onerror = () => {
      // The agent went away (a restart, a network hiccup). EventSource
      // retries by itself and the next snapshot re-renders everything.
      $("#banner").hidden = false;
      document.body.classList.add("offline");
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (say, a 503 from an agent with too many open
        // dashboards): try again ourselves, a little later.
        source.close();
        setTimeout(connect, 5000);
      }
    };
  }

  // -- the fleet: every agent on the broker (GET /api/fleet, fleet events) --

  const fleet = { enabled: false, self: null, nodes: new Map() };
  const ALERT_TEXT = { offline: "offline", under_voltage: "under-voltage", throttled: "throttled", disk_full: "disk over 90 %" };

  async function loadFleet() {
    try {
      const res = await fetch("/api/fleet");
      if (res.ok) onFleet(await res.json());
    } catch { /* the event stream's error handler says we are offline */ }
  }

  function onFleet(f) {
    fleet.enabled = !!f.enabled;
    fleet.self = f.node;
    fleet.nodes = new Map((f.nodes || []).map((n) => [n.id, n]));
    renderFleet();
  }

  function showTab(name) {
    for (const b of document.querySelectorAll("#tabs button")) b.setAttribute("aria-selected", String(b.dataset.tab === name));
    $("#sections").hidden = name !== "sections";
    $("#fleet").hidden = name !== "fleet";
  }

  // The version most nodes run; a node on another one is flagged.
  function usualVersion(nodes) {
    const count = new Map();
    for (const n of nodes) {
      const v = n.info && n.info.version;
      if (v) count.set(v, (count.get(v) || 0) + 1);
    }
    let best = null;
    for (const [v, c] of count) if (best == null || c > count.get(best)) best = v;
    return count.size > 1 ? best : null;
  }

  function clock(unix) {
    return new Date(unix * 1000).toLocaleString([], { dateStyle: "short", timeStyle: "short" });
  }

  function fleetStatus(n, now) {
    if (n.online === true) return "online";
    if (n.online === false) return n.since ? `offline since ${clock(n.since)} (${ago(now - n.since * 1000)})` : "offline";
    return "status unknown";
  }

  function fleetCard(n, usual, now) {
    const info = n.info || {};
    const card = el("div", "card node");
    card.dataset.node = n.id;
    card.classList.toggle("down", n.online === false);
    const head = el("div", "head");
    head.append(el("span", "name", info.name || n.id), el("span", "tag", n.id === fleet.self ? `${n.id} (this node)` : n.id));
    const status = el("div", "status", fleetStatus(n, now));
    status.dataset.online = String(n.online);
    const version = el("div", "version", info.version ? `v${info.version}` : "version unknown");
    if (usual && info.version && info.version !== usual) {
      version.classList.add("differs");
      version.title = `most nodes run v${usual}`;
      version.textContent += ` (others: v${usual})`;
    }
    const figures = [];
    if (info.model) figures.push(info.model);
    if (info.uptime_s != null) figures.push(`up ${duration(info.uptime_s)}`);
    if (info.cpu_temp_c != null) figures.push(`${info.cpu_temp_c.toFixed(1)} °C`);
    if (info.disk_pct != null) figures.push(`disk ${Math.round(info.disk_pct)} %`);
    if (info.mem_pct != null) figures.push(`memory ${Math.round(info.mem_pct)} %`);
    const alerts = el("div", "alerts");
    for (const a of n.alerts || []) if (a !== "offline") alerts.append(el("span", "alert", ALERT_TEXT[a] || a));
    const foot = el("div", "foot");
    // Only web addresses become links (the agent checks it too).
    if (info.url && /^https?:\/\//.test(info.url)) {
      const link = el("a", "open", "open dashboard");
      link.href = info.url;
      link.rel = "noopener noreferrer";
      foot.append(link);
    }
    card.append(head, status, version, el("div", "figures muted", figures.join(" · ")), alerts, foot);
    return card;
  }

  function renderFleet() {
    $("#tabs").hidden = !fleet.enabled;
    if (!fleet.enabled) showTab("sections");
    const nodes = [...fleet.nodes.values()].sort((a, b) => a.id.localeCompare(b.id));
    const usual = usualVersion(nodes);
    const now = Date.now();
    $("#fleet .grid").replaceChildren(...nodes.map((n) => fleetCard(n, usual, now)));
    $("#fleet-empty").hidden = nodes.some((n) => n.id !== fleet.self);
    const down = nodes.filter((n) => n.online === false).length;
    $("#fleet-count").textContent = nodes.length ? `${nodes.length - down}/${nodes.length}` : "";
    // Alerts show on every tab.
    const items = [];
    for (const n of nodes) {
      for (const a of n.alerts || []) {
        const what = a === "offline" ? fleetStatus(n, now) : ALERT_TEXT[a] || a;
        const li = el("li", null, `${(n.info && n.info.name) || n.id}: ${what}`);
        li.dataset.node = n.id;
        li.dataset.alert = a;
        items.push(li);
      }
    }
    $("#alerts").replaceChildren(...items);
    $("#alerts").hidden = items.length === 0;
  }

  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));

  setInterval(() => {
    const now = Date.now();
    renderAbout();
    for (const entry of entities.values()) renderStatus(entry, now);
  }, 1000);
  // "offline since … (5 min ago)" moves on.
  setInterval(() => { if (fleet.enabled) renderFleet(); }, 30000);
  connect();
}

// ---- the API page --------------------------------------------------------------

async function apiPage() {
  const main = $("#api");
  let doc;
  try {
    const res = await fetch("/api/openapi.json");
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    doc = await res.json();
  } catch (err) {
    main.replaceChildren(el("p", "err", `cannot load /api/openapi.json: ${err.message}`));
    return;
  }
  const schemas = (doc.components && doc.components.schemas) || {};
  const refName = (ref) => ref.split("/").pop();

  // A short, readable shape of a JSON schema: indented over several lines,
  // or on one line when `indent` is null.
  function shape(s, indent = "") {
    if (!s) return "any";
    if (s.$ref) return refName(s.$ref);
    if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(" | ");
    if (s.type === "array") return `[${shape(s.items, indent)}]`;
    if (s.properties) {
      const required = new Set(s.required || []);
      const inner = indent == null ? null : indent + "  ";
      const entries = Object.entries(s.properties);
      const fields = entries.map(([k, v], i) => {
        const opt = required.has(k) || !s.required ? "" : "?";
        const field = `"${k}"${opt}: ${shape(v, inner)}${v.nullable ? " | null" : ""}`;
        if (inner == null) return field;
        const comma = i < entries.length - 1 ? "," : "";
        return `${inner}${field}${comma}${v.description ? `  // ${v.description}` : ""}`;
      });
      return inner == null ? `{ ${fields.join(", ")} }` : `{\n${fields.join("\n")}\n${indent}}`;
    }
    return s.type || (s.nullable ? "any" : "object");
  }

  // A schema in a table cell: a link to a named schema, else its shape.
  function schemaCell(type, schema) {
    const td = el("td", null, `${type}: `);
    if (schema && schema.$ref) {
      const a = el("a", null, refName(schema.$ref));
      a.href = `#schema-${refName(schema.$ref)}`;
      td.append(a);
    } else {
      td.append(el("code", null, shape(schema, null)));
    }
    return td;
  }

  function table(rows) {
    const t = el("table");
    for (const cells of rows) {
      const tr = el("tr");
      for (const c of cells) tr.append(typeof c === "string" ? el("td", null, c) : c);
      t.append(tr);
    }
    return t;
  }

  function code(text) {
    const td = el("td");
    td.append(el("code", null, text));
    return td;
  }

  function operation(path, method, op) {
    const box = el("div", "op");
    box.dataset.path = path;
    box.dataset.method = method;
    const h = el("h3");
    h.append(el("span", `method ${method}`, method), el("code", null, path), el("span", null, op.summary || ""));
    if (op.security && op.security.length) h.append(el("span", "lock", "needs the token"));
    box.append(h);
    if (op.parameters && op.parameters.length) {
      box.append(el("h4", null, "Parameters"));
      box.append(table(op.parameters.map((p) => [
        code(p.name), `${p.in}${p.required ? ", required" : ""}`, shape(p.schema), p.description || "",
      ])));
    }
    const body = op.requestBody && op.requestBody.content;
    if (body) {
      for (const [type, media] of Object.entries(body)) {
        box.append(el("h4", null, `Request body, ${type}`), el("pre", null, shape(media.schema)));
      }
    }
    box.append(el("h4", null, "Responses"));
    box.append(table(Object.entries(op.responses || {}).map(([status, r]) => {
      const media = r.content ? Object.entries(r.content)[0] : null;
      return [code(status), r.description || "", media ? schemaCell(media[0], media[1].schema) : ""];
    })));
    return box;
  }

  const tags = new Map();
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const [method, op] of Object.entries(item)) {
      if (!["get", "put", "post", "delete", "patch"].includes(method)) continue;
      const tag = (op.tags && op.tags[0]) || "other";
      if (!tags.has(tag)) tags.set(tag, []);
      tags.get(tag).push(operation(path, method, op));
    }
  }
  const out = [];
  if (doc.info) {
    $("#api-info").textContent = `${doc.info.title} ${doc.info.version} · OpenAPI ${doc.openapi}`;
    out.push(el("p", null, doc.info.description || ""));
  }
  for (const [tag, ops] of tags) {
    const s = el("section");
    s.dataset.tag = tag;
    s.append(el("h2", null, tag), ...ops);
    out.push(s);
  }
  if (Object.keys(schemas).length) {
    const s = el("section");
    s.append(el("h2", null, "Schemas"));
    for (const [name, schema] of Object.entries(schemas)) {
      const box = el("div", "op");
      box.id = `schema-${name}`;
      const h = el("h3");
      h.append(el("code", null, name));
      box.append(h, el("pre", null, shape(schema)));
      s.append(box);
    }
    out.push(s);
  }
  main.replaceChildren(...out);
}
