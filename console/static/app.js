/* Imminence console page: uses only the JSON API under /api and the SSE stream /api/stream.
 * DOM is built with textContent (never innerHTML from data), so message text cannot inject markup.
 * Cells are Leaflet rectangles: SVG paths (each with data-cell-id) for small grids, one canvas above
 * SVG_MAX cells; either way #cell-index holds one <li data-cell-id data-color> per drawn cell. */
(function () {
  "use strict";
  const SVG_MAX = 2000;
  const PALETTE = ["#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026"];
  const NONE = "#d9dde3";
  const CLASS_LABELS = ["below mean + 0.5 sd", "mean + 0.5 to 1.5 sd", "mean + 1.5 to 2.5 sd", "mean + 2.5 to 3.5 sd", "above mean + 3.5 sd"];
  const crimeColour = (c) => (S.config && S.config.crime_colours[c]) || "#333";  // colours come with the vocabulary from /api/config
  const CAM_COLOURS = { online: "#1a7f37", starting: "#9a6700", reconnecting: "#9a6700", offline: "#b42318", failed: "#b42318", stopped: "#6b7280" };

  const S = { map: null, geom: null, cells: new Map(), index: new Map(), cams: new Map(), selected: null,
              config: null, es: null, crime: "all", layer: "merged", snapshotId: null, mapBusy: false, mapAgain: false,
              cameraIds: new Set(), retry: null };
  const $ = (id) => document.getElementById(id);

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v; else if (k === "text") el.textContent = v; else el.setAttribute(k, v);
    }
    for (const kid of kids) if (kid !== null && kid !== undefined) el.append(kid instanceof Node ? kid : String(kid));
    return el;
  }
  function svg(tag, attrs) {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    return el;
  }
  const fmtTime = (iso) => iso ? new Date(iso).toLocaleTimeString() : "—";
  const fmt = (v, d = 2) => (v === null || v === undefined) ? "—" : Number(v).toFixed(d);

  class AuthNeeded extends Error {}
  async function api(path, opts) {
    const r = await fetch(path, Object.assign({ credentials: "same-origin" }, opts || {}));
    if (r.status === 401) { showLogin(); throw new AuthNeeded("login required"); }
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    if (!r.ok) throw new Error((body && body.detail) ? String(typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : `HTTP ${r.status}`);
    return body;
  }

  // -- login ------------------------------------------------------------------------------
  function showLogin() { $("login").hidden = false; $("login-user").focus(); }
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("login-error").textContent = "";
    const r = await fetch("/api/login", { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: $("login-user").value, password: $("login-password").value }) });
    $("login-password").value = "";
    if (!r.ok) { $("login-error").textContent = "Wrong user name or password."; return; }
    $("login").hidden = true;
    start();
  });
  $("logout").addEventListener("click", async () => { await fetch("/api/logout", { method: "POST" }); location.reload(); });

  // -- tabs ---------------------------------------------------------------------------------
  function showTab(name) {
    for (const b of document.querySelectorAll("#tabs button")) b.setAttribute("aria-selected", String(b.dataset.tab === name));
    for (const s of document.querySelectorAll(".tab")) s.hidden = s.id !== `tab-${name}`;
  }
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));

  // -- map ----------------------------------------------------------------------------------
  function cellBounds(g, id) {
    if (g.rects) { const r = g.rects[id]; return [[r[0], r[1]], [r[2], r[3]]]; }
    const m = /^r(\d+)c(\d+)$/.exec(id);
    const row = +m[1], col = +m[2];
    const ll = (x, y) => g.kind === "lonlat" ? [y, x] : [y, x];
    return [ll(g.xs[col], g.ys[row]), ll(g.xs[col + 1], g.ys[row + 1])];
  }

  function colourOf(d, id) {
    const v = (d && d.values && d.values[id]) || 0, cls = (d && d.classes && d.classes[id]) || 0;
    return [v > 0 ? PALETTE[Math.min(cls, 4)] : NONE, v > 0 ? cls : 0, v];
  }

  function buildMap(g, initial) {
    if (S.map) { S.map.remove(); S.map = null; }
    S.cells.clear(); S.index.clear();
    $("cell-index").replaceChildren();
    S.geom = g;
    if (g.kind === "none") { $("snapshot-info").textContent = "waiting for a grid or map snapshot…"; return; }
    const opts = { preferCanvas: g.cells.length > SVG_MAX, zoomSnap: 0.25, attributionControl: !!(S.config && S.config.tile_url) };
    if (g.kind !== "lonlat") opts.crs = L.CRS.Simple;
    const map = L.map("map", opts);
    S.map = map;
    if (g.kind === "lonlat" && S.config && S.config.tile_url)
      L.tileLayer(S.config.tile_url, { attribution: S.config.tile_attribution || "" }).addTo(map);
    const svgMode = g.cells.length <= SVG_MAX;
    const renderer = svgMode ? L.svg() : L.canvas({ padding: 0.2 });
    const frag = document.createDocumentFragment();
    let bounds = null;
    // One layer group with one click handler: 10,000 cells stay cheap to build.
    const group = L.featureGroup();
    group.on("click", (e) => { if (e.layer && e.layer.cellId) selectCell(e.layer.cellId); });
    for (const id of g.cells) {
      const b = cellBounds(g, id);
      // Drawn in their colours straight away: one canvas pass instead of a grey one and a recolour.
      const [colour, cls, v] = colourOf(initial, id);
      const rect = L.rectangle(b, { renderer, weight: 0.4, color: "#8a919c", opacity: 0.6, fillColor: colour, fillOpacity: v > 0 ? 0.75 : 0.35 });
      rect.cellId = id; rect.colour = colour;
      if (svgMode) rect.on("add", () => { rect._path.setAttribute("data-cell-id", id); rect._path.setAttribute("data-color", rect.colour); });
      group.addLayer(rect);
      S.cells.set(id, rect);
      const li = document.createElement("li");
      li.textContent = id;
      li.dataset.cellId = id; li.dataset.color = colour; li.dataset.class = String(cls);
      S.index.set(id, li); frag.append(li);
      const ll = L.latLngBounds(b);
      bounds = bounds ? bounds.extend(ll) : ll;
    }
    $("cell-index").append(frag);
    S.bounds = bounds;
    if (bounds) map.fitBounds(bounds, { padding: [10, 10], animate: false });
    group.addTo(map);
    addLegend(map);
    for (const c of S.cams.values()) placeCamera(c);
  }

  function addLegend(map) {
    const legend = L.control({ position: "bottomright" });
    legend.onAdd = () => {
      const div = h("div", { class: "legend", id: "legend" }, h("strong", {}, "Imminence class"), h("br"));
      CLASS_LABELS.forEach((label, i) => {
        const sw = h("span", { class: "swatch" }); sw.style.background = PALETTE[i];
        div.append(sw, `${i}: ${label}`, h("br"));
      });
      const sw = h("span", { class: "swatch" }); sw.style.background = NONE;
      div.append(sw, "no value");
      return div;
    };
    legend.addTo(map);
  }

  async function refreshMap() {
    if (S.mapBusy) { S.mapAgain = true; return; }
    S.mapBusy = true;
    try {
      do {
        S.mapAgain = false;
        const d = await api(`/api/map?crime=${encodeURIComponent(S.crime)}&layer=${encodeURIComponent(S.layer)}`);
        if (d.snapshot_id && (!S.geom || S.geom.kind === "none" || S.cells.size === 0)) buildMap(await api("/api/grid"));
        applyMap(d);
      } while (S.mapAgain);
    } catch (e) { if (!(e instanceof AuthNeeded)) console.warn("map refresh failed", e); }
    finally { S.mapBusy = false; }
  }

  function applyMap(d) {
    const values = d.values || {}, classes = d.classes || {};
    for (const [id, rect] of S.cells) {
      const [colour, cls, v] = colourOf(d, id);
      if (rect.colour !== colour) {
        const li = S.index.get(id);
        rect.colour = colour;
        rect.setStyle({ fillColor: colour, fillOpacity: v > 0 ? 0.75 : 0.35 });
        if (rect._path) rect._path.setAttribute("data-color", colour);
        li.dataset.color = colour;
        li.dataset.class = String(cls);
      }
    }
    S.snapshotId = d.snapshot_id;
    $("map").dataset.snapshotId = d.snapshot_id || "";
    $("map").dataset.layer = `${d.crime}/${d.layer}`;
    $("snapshot-info").textContent = d.snapshot_id ? `snapshot ${fmtTime(d.created_at)} · ${Object.keys(values).length} cells with values` : "no snapshot yet";
    // Why the live map is empty (every window received was older than the map's live horizon), as text.
    const notice = $("map-notice");
    notice.hidden = !d.notice;
    notice.textContent = d.notice || "";
  }

  $("crime").addEventListener("change", (e) => { S.crime = e.target.value; refreshMap(); });
  for (const r of document.querySelectorAll('input[name="layer"]')) r.addEventListener("change", (e) => { S.layer = e.target.value; refreshMap(); });

  // -- cameras ---------------------------------------------------------------------------------
  function camLatLng(c) {
    const g = S.geom;
    if (!g || g.kind === "none") return null;
    if (c.cell_id && S.cells.has(c.cell_id)) return S.cells.get(c.cell_id).getBounds().getCenter();
    if (g.kind === "lonlat" && c.lat !== null && c.lon !== null) return L.latLng(c.lat, c.lon);
    return null;
  }
  function placeCamera(c) {
    const prev = S.cams.get(c.camera_id);
    if (prev && prev.marker && S.map) prev.marker.remove();
    c.marker = null;
    const at = S.map ? camLatLng(c) : null;
    if (at) {
      c.marker = L.circleMarker(at, { radius: 7, color: "#fff", weight: 2, fillColor: CAM_COLOURS[c.state] || "#444", fillOpacity: 1 })
        .bindTooltip(h("span", {}, `${c.camera_id}: ${c.state}`)).addTo(S.map);
      c.marker.on("add", () => { if (c.marker._path) c.marker._path.setAttribute("data-camera-id", c.camera_id); });
      if (c.marker._path) c.marker._path.setAttribute("data-camera-id", c.camera_id);
      c.marker.on("click", () => { if (c.cell_id && S.cells.has(c.cell_id)) selectCell(c.cell_id); else showTab("cameras"); });
    }
    S.cams.set(c.camera_id, c);
  }
  function renderCameras() {
    const rows = [...S.cams.values()].sort((a, b) => a.camera_id.localeCompare(b.camera_id)).map((c) =>
      h("tr", { "data-camera-id": c.camera_id, class: c.camera_id === S.selectedCamera ? "selected" : null },
        h("td", {}, c.camera_id), h("td", { class: `state-${c.state}` }, c.state + (c.message ? ` (${c.message})` : "")),
        h("td", {}, fmt(c.fps_analysed, 1)), h("td", {}, fmtTime(c.last_event_at)), h("td", {}, c.reconnects),
        h("td", {}, `${c.events_buffered} / ${c.events_dropped}`)));
    for (const tr of rows) {
      const c = S.cams.get(tr.dataset.cameraId);
      if (c && c.cell_id && S.cells.has(c.cell_id)) tr.addEventListener("click", () => selectCell(c.cell_id));
    }
    $("camera-list").replaceChildren(...rows);
    const sel = $("f-camera"), cur = sel.value;
    for (const id of S.cams.keys()) S.cameraIds.add(id);
    sel.replaceChildren(h("option", { value: "" }, "any"), ...[...S.cameraIds].sort().map((id) => h("option", { value: id }, id)));
    sel.value = cur;
  }
  async function refreshCameras() {
    try { for (const c of await api("/api/cameras")) placeCamera(c); renderCameras(); } catch (e) { /* shown by banner */ }
  }

  // -- events ------------------------------------------------------------------------------------
  // an abstained clip is "normal (uncertain)": the classifier saw nothing it was trained for
  function conceptText(e) { return e.concept ? (e.uncertain ? `${e.concept} (uncertain)` : e.concept) : "—"; }
  function eventRow(e) {
    const tr = h("tr", { "data-event-id": e.event_id, "data-cell-id-ref": e.cell_id || "", title: e.cell_id ? "show this cell" : null },
      h("td", {}, fmtTime(e.clip_end)), h("td", {}, e.camera_id), h("td", {}, e.cell_id || "—"),
      h("td", { title: e.reason || null }, conceptText(e)), h("td", {}, fmt(e.score)));
    if (e.cell_id && S.cells.has(e.cell_id)) tr.addEventListener("click", () => selectCell(e.cell_id));
    return tr;
  }
  function filters() { return { camera: $("f-camera").value, concept: $("f-concept").value, cell: $("f-cell").value.trim() }; }
  function matches(e, f) {
    return (!f.camera || e.camera_id === f.camera) && (!f.concept || e.concept === f.concept) && (!f.cell || e.cell_id === f.cell);
  }
  async function refreshEvents() {
    const f = filters();
    const q = new URLSearchParams({ limit: "200" });
    for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
    try {
      const evs = await api(`/api/events?${q}`);
      for (const e of evs) S.cameraIds.add(e.camera_id);
      $("event-feed").replaceChildren(...evs.map(eventRow));
    } catch (e) { if (!(e instanceof AuthNeeded)) $("event-feed").replaceChildren(h("tr", {}, h("td", { colspan: 5, class: "error" }, e.message))); }
  }
  function pushEvent(e) {
    if (!S.cameraIds.has(e.camera_id)) { S.cameraIds.add(e.camera_id); renderCameras(); }
    if (!matches(e, filters())) return;
    const feed = $("event-feed");
    feed.prepend(eventRow(e));
    while (feed.children.length > 200) feed.lastChild.remove();
  }
  // -- situations: one row per incident, its clips grouped under it (open ones marked live) ---------------
  function peakText(s) {
    if (s.peak_concept) return `${s.peak_concept} ${fmt(s.peak_score)}${s.uncertain ? " (some clips uncertain)" : ""}`;
    return s.reason === "zone_loitering" ? "stayed in a zone" : "—";  // opened by a zone's dwell time
  }
  function situationBody(s) {
    const head = h("tr", { class: "situation", "data-situation-id": s.situation_id, "data-live": s.live ? "1" : "0",
                           "data-type": s.type, title: `${s.clips.length} clips held · ${s.tracks} tracks · ${Object.entries(s.concepts).map(([c, n]) => `${c} ×${n}`).join(", ") || "no concept"}` },
      h("td", {}, fmtTime(s.start), " ", s.live ? h("span", { class: "badge live" }, "live")
        : h("span", { class: "badge" }, `ended${s.ended_by ? ` (${s.ended_by})` : ""}`)),
      h("td", {}, s.camera_id), h("td", {}, `${fmt(s.duration_s, 0)} s`), h("td", {}, peakText(s)),
      h("td", {}, s.zones.length ? s.zones.map((z) => `${z.name} ${fmt(z.dwell_s, 1)} s${z.dwell_s >= z.loitering_s ? ` (≥ ${fmt(z.loitering_s, 0)} s)` : ""}`).join(", ") : "—"));
    const clips = s.clips.map((e) => h("tr", { class: "sit-clip", "data-event-id": e.event_id },
      h("td", {}, fmtTime(e.clip_end)), h("td", {}, e.cell_id || "—"), h("td", {}, "clip"),
      h("td", { title: e.reason || null }, `${conceptText(e)} ${fmt(e.score)}`), h("td", {}, `${e.persons} persons`)));
    return h("tbody", { "data-situation-id": s.situation_id }, head, ...clips);
  }
  async function refreshSituations() {
    const f = filters();
    const q = new URLSearchParams({ limit: "50" });
    if (f.camera) q.set("camera", f.camera);
    try {
      const sits = await api(`/api/situations?${q}`);
      $("situation-empty").hidden = sits.length > 0;
      for (const old of document.querySelectorAll("#situation-feed tbody[data-situation-id]")) old.remove();
      $("situation-feed").append(...sits.map(situationBody));
    } catch (e) { /* shown by the banner */ }
  }
  let sitTimer = null;
  function situationsSoon() { clearTimeout(sitTimer); sitTimer = setTimeout(refreshSituations, 250); }

  $("event-filters").addEventListener("change", refreshSituations);
  $("event-filters").addEventListener("change", refreshEvents);
  $("event-filters").addEventListener("submit", (ev) => { ev.preventDefault(); refreshEvents(); });

  // -- cell detail ---------------------------------------------------------------------------------
  async function selectCell(id) {
    S.selected = id;
    if (location.pathname !== `/cells/${id}`) history.replaceState(null, "", `/cells/${id}`);
    showTab("cell");
    try { renderCell(await api(`/api/cells/${encodeURIComponent(id)}`)); }
    catch (e) {
      if (e instanceof AuthNeeded) return;
      $("cell-hint").hidden = true;
      $("cell-detail").hidden = false;
      $("cell-detail").replaceChildren(h("p", { class: "error", id: "cell-error" }, e.message));
    }
  }

  function chart(history, threshold) {
    const W = 360, H = 140, P = 24;
    const el = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "imminence per crime type over the last hours" });
    if (!history.length) { const t = svg("text", { x: P, y: H / 2, "font-size": 11, fill: "#6b7280" }); t.textContent = "no imminence history yet"; el.append(t); return el; }
    const t0 = Date.parse(history[0].window_end), t1 = Math.max(Date.parse(history[history.length - 1].window_end), t0 + 1);
    const X = (t) => P + (W - 2 * P) * (Date.parse(t) - t0) / (t1 - t0 || 1);
    const Y = (v) => H - P - (H - 2 * P) * Math.max(0, Math.min(10, v)) / 10;
    for (const v of [0, 5, 10]) {
      el.append(svg("line", { x1: P, x2: W - P, y1: Y(v), y2: Y(v), stroke: v === threshold ? "#b42318" : "#d7dbe0", "stroke-dasharray": v === threshold ? "4 3" : "" }));
      const lab = svg("text", { x: 2, y: Y(v) + 4, "font-size": 10, fill: "#6b7280" }); lab.textContent = String(v); el.append(lab);
    }
    for (const crime of Object.keys(history[history.length - 1].imminence)) {
      const pts = history.map((p) => `${X(p.window_end).toFixed(1)},${Y(p.imminence[crime] || 0).toFixed(1)}`).join(" ");
      el.append(svg(history.length > 1 ? "polyline" : "circle", history.length > 1
        ? { points: pts, fill: "none", stroke: crimeColour(crime), "stroke-width": 1.6, "data-crime": crime }
        : { cx: X(history[0].window_end), cy: Y(history[0].imminence[crime] || 0), r: 3, fill: crimeColour(crime), "data-crime": crime }));
    }
    const a = svg("text", { x: P, y: H - 6, "font-size": 10, fill: "#6b7280" }); a.textContent = fmtTime(history[0].window_end); el.append(a);
    const b = svg("text", { x: W - P - 50, y: H - 6, "font-size": 10, fill: "#6b7280" }); b.textContent = fmtTime(history[history.length - 1].window_end); el.append(b);
    return el;
  }

  function renderCell(d) {
    $("cell-hint").hidden = true;
    const box = $("cell-detail");
    box.hidden = false;
    box.dataset.cellId = d.cell_id;
    const L0 = d.latest;
    const kids = [h("h2", {}, `Cell ${d.cell_id}` + (d.zone ? ` · ${d.zone}` : ""))];
    if (!L0) kids.push(h("p", { class: "muted" }, "No imminence message for this cell yet."));
    else kids.push(h("p", { class: "muted" }, `window ${fmtTime(L0.window_start)}–${fmtTime(L0.window_end)} · ${L0.events} events · cameras ${L0.cameras.join(", ") || "—"}`));
    // flags
    const flags = h("div", { id: "cell-flags" }, h("strong", {}, "Imminent crime flags: "));
    for (const [crime, on] of Object.entries(L0 ? L0.flags : {})) flags.append(h("span", { class: on ? "flag on" : "flag", "data-crime": crime }, `${crime}${on ? " ⚑" : ""}`));
    kids.push(flags);
    // chart
    const legend = h("div", { class: "chart-legend" });
    for (const c of S.config.crimes) { if (c === "all") continue; const sw = h("span", {}, `— ${c}`); sw.style.color = crimeColour(c); legend.append(sw); }
    kids.push(h("h3", {}, "Imminence over the last hours"), chart(d.history, L0 ? L0.threshold : 5), legend);
    // per-crime table
    const tb = h("tbody");
    const crimes = new Set([...Object.keys(L0 ? L0.imminence : {}), ...Object.keys(d.map || {})]);
    for (const c of crimes) {
      const m = (d.map || {})[c] || {};
      tb.append(h("tr", {}, h("td", {}, c), h("td", {}, fmt(L0 ? L0.imminence[c] : null)), h("td", {}, fmt(m.live)), h("td", {}, fmt(m.forecast, 3)), h("td", {}, fmt(m.merged)), h("td", {}, m.class ?? "—")));
    }
    kids.push(h("table", { class: "data", id: "cell-values" }, h("thead", {}, h("tr", {}, h("th", {}, "crime"), h("th", {}, "ANFIS"), h("th", {}, "live KDE"), h("th", {}, "forecast"), h("th", {}, "merged"), h("th", {}, "class"))), tb));
    // rules
    kids.push(h("h3", {}, "ANFIS rules that fired"));
    const rules = h("div", { id: "cell-rules" });
    const top = L0 ? L0.top_rules : {};
    if (!Object.keys(top).length) rules.append(h("p", { class: "muted" }, "No rules reported."));
    for (const [crime, list] of Object.entries(top)) {
      const rt = h("tbody");
      for (const r of list) {
        const bar = h("span", { class: "bar" }); bar.style.width = `${Math.round(60 * r.strength)}px`;
        rt.append(h("tr", { class: "rule-row", "data-crime": crime }, h("td", { class: "rule" }, r.rule), h("td", {}, bar, " ", fmt(r.strength, 3)), h("td", {}, fmt(r.output))));
      }
      const inputs = (L0.inputs || {})[crime] || {};
      rules.append(h("h4", {}, crime), h("table", { class: "data" }, h("thead", {}, h("tr", {}, h("th", {}, "rule"), h("th", {}, "strength"), h("th", {}, "output"))), rt),
        h("p", { class: "muted" }, "inputs: " + (Object.entries(inputs).map(([k, v]) => `${k}=${fmt(v)}`).join(", ") || "—")));
    }
    kids.push(rules);
    // events
    kids.push(h("h3", {}, "Recent indicator events"));
    const et = h("tbody", { id: "cell-events" });
    for (const e of d.events) et.append(h("tr", {}, h("td", {}, fmtTime(e.clip_end)), h("td", {}, e.camera_id), h("td", { title: e.reason || null }, conceptText(e)), h("td", {}, e.method || "—"),
      h("td", {}, Object.entries(e.scores).slice(0, 3).map(([k, v]) => `${k} ${fmt(v)}`).join(", "))));
    kids.push(h("table", { class: "data" }, h("thead", {}, h("tr", {}, h("th", {}, "time"), h("th", {}, "camera"), h("th", {}, "GMCP label"), h("th", {}, "method"), h("th", {}, "scores"))), et));
    box.replaceChildren(...kids);
  }

  // -- upload ------------------------------------------------------------------------------------------
  $("upload-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const file = $("upload-file").files[0];
    if (!file) return;
    const status = $("upload-status"), out = $("upload-result");
    status.className = ""; status.textContent = `Analysing ${file.name}…`; out.replaceChildren();
    const fd = new FormData(); fd.append("file", file);
    try {
      const d = await api("/api/uploads", { method: "POST", body: fd });
      status.textContent = `${d.kind} · ${d.frames} frames analysed · ${d.clips.length} clip(s) · ${fmt(d.seconds, 1)} s`;
      const tb = h("tbody", { id: "upload-clips" });
      for (const c of d.clips) tb.append(h("tr", { "data-label": c.label }, h("td", {}, c.index), h("td", {}, c.label), h("td", {}, c.method), h("td", {}, fmt(c.score)),
        h("td", {}, Object.entries(c.scores).sort((a, b) => b[1] - a[1]).slice(0, 4).map(([k, v]) => `${k} ${fmt(v)}`).join(", "))));
      const frames = h("div", { class: "keyframes" });
      for (const k of d.key_frames) frames.append(h("figure", {}, h("img", { src: k.image, alt: `key frame ${k.frame_index}` }), h("figcaption", { class: "muted" }, `frame ${k.frame_index} · ${k.boxes.length} boxes`)));
      out.replaceChildren(h("table", { class: "data" }, h("thead", {}, h("tr", {}, h("th", {}, "clip"), h("th", {}, "GMCP label"), h("th", {}, "method"), h("th", {}, "score"), h("th", {}, "concept scores"))), tb), frames);
    } catch (e) {
      if (e instanceof AuthNeeded) return;
      status.className = "error"; status.textContent = e.message;
    }
  });

  // -- live stream ---------------------------------------------------------------------------------------
  function setStatus(s) {
    const banner = $("stale-banner");
    if (s.stale) {
      banner.hidden = false;
      banner.textContent = `Data is stale since ${s.stale_since ? new Date(s.stale_since).toLocaleString() : "start-up"}: the broker cannot be reached. The map will catch up when it returns.`;
    } else banner.hidden = true;
    $("counters").textContent = `messages: maps ${s.received["imminence.maps"] || 0}, cells ${s.received["imminence.cells"] || 0}, events ${s.received["imminence.indicators"] || 0}, cameras ${s.received["imminence.cameras"] || 0}, situations ${s.received["imminence.situations"] || 0} · skipped malformed ${s.malformed} · repeats ${s.duplicates}`;
    $("counters").dataset.malformed = String(s.malformed);
    if (s.snapshot_id && s.snapshot_id !== S.snapshotId) refreshMap();
  }

  function connect() {
    if (S.es) S.es.close();
    const es = new EventSource("/api/stream");
    S.es = es;
    let lost = false;
    es.onopen = () => {
      const n = $("conn-notice");
      if (lost || !n.hidden) { n.textContent = "Live connection restored."; setTimeout(() => { n.hidden = true; }, 2000); resync(); }
      lost = false;
    };
    es.onerror = () => {
      lost = true;
      const n = $("conn-notice"); n.hidden = false; n.textContent = "Live connection lost — reconnecting…";
      if (es.readyState === EventSource.CLOSED) {
        // Closed for good: the server is down (retry) or the session ended (api() shows the login).
        clearTimeout(S.retry);
        S.retry = setTimeout(() => api("/api/me").then(connect, (e) => { if (!(e instanceof AuthNeeded)) connect(); }), 2000);
      }
    };
    es.addEventListener("map", () => refreshMap());
    es.addEventListener("status", (m) => setStatus(JSON.parse(m.data)));
    es.addEventListener("event", (m) => { pushEvent(JSON.parse(m.data)); if (document.querySelector("#situation-feed tr[data-live='1']")) situationsSoon(); });
    es.addEventListener("situation", () => situationsSoon());
    es.addEventListener("camera", (m) => { placeCamera(JSON.parse(m.data)); renderCameras(); });
    es.addEventListener("cell", (m) => { const d = JSON.parse(m.data); if (d.cell_id === S.selected) selectCell(d.cell_id); });
  }

  async function resync() {
    await Promise.all([refreshMap(), refreshCameras(), refreshEvents(), refreshSituations()]);
    if (S.selected) selectCell(S.selected);
  }

  async function start() {
    let me;
    try { me = await api("/api/me"); } catch (e) { return; }
    $("user-info").textContent = me.auth ? `${me.user} (${me.role})` : "open console (loopback)";
    $("logout").hidden = !me.auth;
    const layerUrl = `/api/map?crime=${encodeURIComponent(S.crime)}&layer=${encodeURIComponent(S.layer)}`;
    const [config, geom, first] = await Promise.all([api("/api/config"), api("/api/grid"), api(layerUrl)]);
    S.config = config;
    $("upload-tab").hidden = !S.config.can_upload;
    $("upload-limits").textContent = `A video up to ${S.config.upload_max_mb} MB and ${S.config.upload_max_seconds} s, or an image. It is analysed by the camera pipeline and deleted afterwards.`;
    $("f-concept").append(...S.config.concepts.map((c) => h("option", { value: c, title: S.config.concept_meanings[c] }, c)));
    $("crime").append(...S.config.crimes.filter((c) => c !== "all").map((c) => h("option", { value: c }, c)));
    buildMap(geom, first);
    applyMap(first);
    await resync();
    connect();
    const m = /^\/(cells|cameras)\/([^/]+)$/.exec(location.pathname);
    if (m && m[1] === "cells") selectCell(decodeURIComponent(m[2]));
    if (m && m[1] === "cameras") {
      S.selectedCamera = decodeURIComponent(m[2]);
      showTab("cameras");
      renderCameras();
    }
    document.body.dataset.ready = "1";
  }
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { if (S.map) { S.map.invalidateSize(); if (S.bounds) S.map.fitBounds(S.bounds, { padding: [10, 10] }); } }, 150);
  });
  window.imminence = S;
  start();
})();
