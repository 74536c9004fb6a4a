// The Analytics page: reads the controls, asks the export function for JSON,
// draws an SVG line chart and a table, and keeps the "Export data" link on the
// same selection. No libraries, nothing from the internet.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  // Colours with at least 4.5:1 contrast on white; dashes tell agents apart.
  const COLOURS = ["#1a5fb4", "#c01c28", "#2e7d32", "#7b3fa0", "#a15c00", "#006e7a", "#555555", "#b0306a"];
  const DASHES = ["", "7 4", "2 3", "9 3 2 3"];
  const RATES = new Set(["delivery_rate", "read_rate"]);
  // The function's root: the page lives at <root>ui.
  const ROOT = new URL(".", window.location.href);

  const form = document.getElementById("controls");
  const scale = document.getElementById("scale");
  const start = document.getElementById("start");
  const end = document.getElementById("end");
  const agent = document.getElementById("agent");
  const metricBoxes = Array.from(form.querySelectorAll('input[name="metrics"]'));
  const exportLink = document.getElementById("export-link");
  const status = document.getElementById("status");
  let generation = 0;

  function isoDate(d) {
    return d.toISOString().slice(0, 10);
  }

  function label(metric) {
    const box = metricBoxes.find((b) => b.value === metric);
    return box ? box.parentElement.textContent.trim() : metric;
  }

  function selection() {
    return {
      start: start.value,
      end: end.value,
      scale: scale.value,
      metrics: metricBoxes.filter((b) => b.checked).map((b) => b.value),
      agent: agent.value,
    };
  }

  function query(sel, extra) {
    const params = new URLSearchParams({
      start: sel.start,
      end: sel.end,
      scale: sel.scale,
      metrics: sel.metrics.join(","),
    });
    if (sel.agent) params.set("agent", sel.agent);
    for (const [k, v] of Object.entries(extra || {})) params.set(k, v);
    return params;
  }

  function setStatus(text, isError) {
    status.textContent = text;
    status.classList.toggle("error", Boolean(isError));
  }

  function initialise() {
    const params = new URLSearchParams(window.location.search);
    const yesterday = new Date(Date.now() - 86400000);
    const first = new Date(yesterday.getTime() - 29 * 86400000);
    end.value = params.get("end") || isoDate(yesterday);
    start.value = params.get("start") || isoDate(first);
    if (params.get("scale")) scale.value = params.get("scale");
    if (params.get("metrics")) {
      const wanted = params.get("metrics").split(",");
      metricBoxes.forEach((b) => (b.checked = wanted.includes(b.value)));
    }
    if (params.get("agent")) addAgentOption(params.get("agent")).selected = true;
  }

  function addAgentOption(id) {
    const existing = Array.from(agent.options).find((o) => o.value === id);
    if (existing) return existing;
    const option = document.createElement("option");
    option.value = id;
    option.textContent = id;
    agent.appendChild(option);
    return option;
  }

  async function fetchJson(url) {
    const resp = await fetch(url, { headers: { Accept: "application/json" } });
    const body = await resp.json().catch(() => null);
    if (!resp.ok) {
      throw new Error((body && body.error) || `the server answered ${resp.status}`);
    }
    return body;
  }

  async function loadAgents(sel) {
    const params = new URLSearchParams({ start: sel.start, end: sel.end });
    const body = await fetchJson(new URL(`agents?${params}`, ROOT));
    const chosen = agent.value;
    agent.length = 1; // keep "All agents"
    body.agents.forEach(addAgentOption);
    if (chosen) addAgentOption(chosen).selected = true;
  }

  async function refresh(withAgents) {
    const sel = selection();
    const mine = ++generation;
    exportLink.href = new URL(`?${query(sel)}`, ROOT).href;
    history.replaceState(null, "", `?${query(sel)}`);
    document.body.dataset.state = "loading";
    if (!sel.metrics.length) {
      setStatus("Choose at least one metric.", true);
      document.body.dataset.state = "error";
      return;
    }
    setStatus("Loading…");
    try {
      if (withAgents) await loadAgents(sel);
      const rows = await fetchJson(new URL(`?${query(sel, { format: "json" })}`, ROOT));
      if (mine !== generation) return;
      render(sel, rows);
      setStatus(`${rows.length} rows.`);
      document.body.dataset.state = "ready";
    } catch (err) {
      if (mine !== generation) return;
      setStatus(`Could not load the data: ${err.message}`, true);
      document.body.dataset.state = "error";
    }
  }

  function describe(sel) {
    const what = sel.metrics.map(label).join(", ");
    const who = sel.agent ? `agent ${sel.agent}` : "all agents";
    return `${what} per ${sel.scale}, ${sel.start} to ${sel.end}, ${who}`;
  }

  function format(metric, value) {
    if (value === null || value === undefined) return "";
    if (RATES.has(metric)) return Number(value).toFixed(4);
    if (typeof value === "number" && !Number.isInteger(value)) return String(Math.round(value * 1000) / 1000);
    return String(value);
  }

  let shown = null;
  function render(sel, rows) {
    shown = { sel, rows };
    renderTable(sel, rows);
    renderChart(sel, rows);
  }

  function renderTable(sel, rows) {
    const table = document.getElementById("numbers");
    document.getElementById("table-caption").textContent = describe(sel);
    const head = document.createElement("tr");
    ["Date", "Agent", ...sel.metrics.map(label)].forEach((text, i) => {
      const th = document.createElement("th");
      th.scope = "col";
      if (i > 1) th.className = "num";
      th.textContent = text;
      head.appendChild(th);
    });
    table.tHead.replaceChildren(head);
    const body = document.createDocumentFragment();
    rows.forEach((row) => {
      const tr = document.createElement("tr");
      const date = document.createElement("th");
      date.scope = "row";
      date.textContent = row.date;
      tr.appendChild(date);
      const who = document.createElement("td");
      who.textContent = row.agent_id;
      tr.appendChild(who);
      sel.metrics.forEach((m) => {
        const td = document.createElement("td");
        td.className = "num";
        td.textContent = format(m, row[m]);
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    table.tBodies[0].replaceChildren(body);
  }

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }

  function niceMax(value) {
    if (value <= 0) return 1;
    const step = Math.pow(10, Math.floor(Math.log10(value)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= value) return m * step;
    return 10 * step;
  }

  function renderChart(sel, rows) {
    const periods = Array.from(new Set(rows.map((r) => r.date))).sort();
    const agents = Array.from(new Set(rows.map((r) => r.agent_id))).sort();
    const series = [];
    sel.metrics.forEach((metric, mi) => {
      agents.forEach((who, ai) => {
        const byDate = new Map(rows.filter((r) => r.agent_id === who).map((r) => [r.date, r[metric]]));
        series.push({
          metric,
          agent: who,
          colour: COLOURS[(mi * agents.length + ai) % COLOURS.length],
          dash: DASHES[ai % DASHES.length],
          values: periods.map((p) => (byDate.has(p) ? byDate.get(p) : null)),
        });
      });
    });
    // The drawing is as wide as its box, so text keeps its size on a phone.
    const box = document.getElementById("chart").clientWidth || 800;
    const W = Math.max(320, Math.min(1100, box)), H = W < 500 ? 260 : 320;
    const rates = series.filter((s) => RATES.has(s.metric));
    // Rates (0..1) beside counts or seconds get their own axis on the right.
    const split = rates.length > 0 && rates.length < series.length;
    const L = 56, R = split ? 56 : 24, T = 16, B = 40;
    const maxOf = (list) => {
      const vs = list.flatMap((s) => s.values).filter((v) => v !== null);
      return vs.length ? Math.max(...vs) : 0;
    };
    const left = split ? series.filter((s) => !RATES.has(s.metric)) : series;
    const top = niceMax(maxOf(left));
    const top2 = split ? niceMax(maxOf(rates)) : top;
    const x = (i) => L + (periods.length > 1 ? (i * (W - L - R)) / (periods.length - 1) : (W - L - R) / 2);
    const yFor = (t) => (v) => T + (H - T - B) * (1 - v / t);
    const y = yFor(top);

    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": "svg-title svg-desc" });
    el("title", { id: "svg-title" }, svg).textContent = `Line chart: ${describe(sel)}`;
    el("desc", { id: "svg-desc" }, svg).textContent =
      `${periods.length} periods, ${series.length} lines` +
      (split ? "; rates use the right-hand axis" : "") +
      "; the numbers are in the table below.";

    const grid = el("g", { class: "grid", "aria-hidden": "true" }, svg);
    const tick = (v, t) => (Number.isInteger(v) ? String(v) : v.toFixed(t <= 10 ? 2 : 1));
    for (let i = 0; i <= 4; i++) {
      const v = (top * i) / 4;
      el("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#c8c8c8", "stroke-width": 1 }, grid);
      const t = el("text", { x: L - 8, y: y(v) + 4, "text-anchor": "end", fill: "#333333", "font-size": 12 }, grid);
      t.textContent = tick(v, top);
      if (split) {
        const v2 = (top2 * i) / 4;
        const t2 = el("text", { x: W - R + 8, y: y(v) + 4, "text-anchor": "start", fill: "#333333", "font-size": 12 }, grid);
        t2.textContent = tick(v2, top2);
      }
    }
    const labelWidth = 84;
    const every = Math.max(1, Math.ceil(periods.length / Math.max(1, Math.floor((W - L - R) / labelWidth))));
    periods.forEach((p, i) => {
      if (i % every !== 0) return;
      const anchor = periods.length > 1 && i === periods.length - 1 ? "end" : i === 0 && periods.length > 1 ? "start" : "middle";
      const t = el("text", { x: x(i), y: H - B + 20, "text-anchor": anchor, fill: "#333333", "font-size": 12 }, grid);
      t.textContent = p;
    });
    el("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, stroke: "#333333", "stroke-width": 1 }, grid);

    series.forEach((s) => {
      const sy = split && RATES.has(s.metric) ? yFor(top2) : y;
      const g = el("g", { class: "series", "data-metric": s.metric, "data-agent": s.agent }, svg);
      let d = "";
      let pen = false;
      s.values.forEach((v, i) => {
        if (v === null) {
          pen = false;
          return;
        }
        d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${sy(v).toFixed(1)}`;
        pen = true;
      });
      if (d) {
        el("path", { d, fill: "none", stroke: s.colour, "stroke-width": 2.5, "stroke-dasharray": s.dash }, g);
      }
      s.values.forEach((v, i) => {
        if (v === null) return;
        const c = el("circle", { cx: x(i).toFixed(1), cy: sy(v).toFixed(1), r: 3.5, fill: s.colour }, g);
        el("title", {}, c).textContent = `${label(s.metric)}, ${s.agent}, ${periods[i]}: ${format(s.metric, v)}`;
      });
    });

    document.getElementById("chart").replaceChildren(svg);
    document.getElementById("chart-caption").textContent = describe(sel);
    const legend = document.getElementById("legend");
    legend.replaceChildren(
      ...series.map((s) => {
        const li = document.createElement("li");
        const key = el("svg", { width: 28, height: 10, "aria-hidden": "true" });
        el("line", { x1: 0, x2: 28, y1: 5, y2: 5, stroke: s.colour, "stroke-width": 3, "stroke-dasharray": s.dash }, key);
        li.appendChild(key);
        const axis = split && RATES.has(s.metric) ? " (right axis)" : "";
        li.append(` ${label(s.metric)} · ${s.agent}${axis}`);
        return li;
      }),
    );
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    refresh(true);
  });
  [start, end].forEach((input) => input.addEventListener("change", () => refresh(true)));
  [scale, agent, ...metricBoxes].forEach((input) => input.addEventListener("change", () => refresh(false)));

  let resizing = 0;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => shown && renderChart(shown.sel, shown.rows), 150);
  });

  initialise();
  refresh(true);
})();
