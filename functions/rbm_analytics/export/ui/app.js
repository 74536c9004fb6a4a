// The Analytics page: reads the controls, asks the export function for JSON
// (with status=1, and total=1 for the all-agents line), draws one SVG line
// chart per unit (counts, rates, durations) and a table, and keeps the
// "Export data" link and the page's URL on the same selection. No libraries,
// nothing from the internet.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  // Colours with at least 4.5:1 contrast on white; marker shapes tell agents apart.
  const COLOURS = ["#1a5fb4", "#c01c28", "#2e7d32", "#7b3fa0", "#a15c00", "#006e7a", "#555555", "#b0306a"];
  const SHAPES = ["circle", "square", "triangle", "diamond"];
  const TOTAL = "*"; // the export's all-agents row
  const UNITS = [
    { unit: "count", title: "Counts" },
    { unit: "rate", title: "Rates" },
    { unit: "duration", title: "Durations" },
  ];
  // Seconds per duration unit, largest first.
  const DURATIONS = [
    { name: "d", seconds: 86400 },
    { name: "h", seconds: 3600 },
    { name: "min", seconds: 60 },
    { name: "s", seconds: 1 },
  ];
  const STATUS_TEXT = { partial: "so far", provisional: "provisional", final: "final" };
  // The function's root: the page lives at <root>ui.
  const ROOT = new URL(".", window.location.href);

  const form = document.getElementById("controls");
  const range = document.getElementById("range");
  const scale = document.getElementById("scale");
  const start = document.getElementById("start");
  const end = document.getElementById("end");
  const agent = document.getElementById("agent");
  const compare = document.getElementById("compare");
  const total = document.getElementById("total");
  const metricBoxes = Array.from(form.querySelectorAll('input[name="metrics"]'));
  const exportLink = document.getElementById("export-link");
  const copyButton = document.getElementById("copy-link");
  const shareUrl = document.getElementById("share-url");
  const status = document.getElementById("status");
  let generation = 0;
  // Agents asked for in the address, until the export has listed them (see initialise).
  const requested = new Map();

  // ---- dates ----------------------------------------------------------------
  function isoDate(d) {
    return d.toISOString().slice(0, 10);
  }

  function utcToday() {
    const now = new Date();
    return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
  }

  function addDays(d, n) {
    return new Date(d.getTime() + n * 86400000);
  }

  // A preset's [start, end], in UTC days; each ends today, so today's partial
  // numbers show, except "previous month".
  function presetDates(preset) {
    const today = utcToday();
    const y = today.getUTCFullYear(), m = today.getUTCMonth();
    if (/^\d+$/.test(preset)) return [addDays(today, 1 - Number(preset)), today];
    if (preset === "month") return [new Date(Date.UTC(y, m, 1)), today];
    if (preset === "previous-month") return [new Date(Date.UTC(y, m - 1, 1)), new Date(Date.UTC(y, m, 0))];
    if (preset === "year") return [new Date(Date.UTC(y, 0, 1)), today];
    return null;
  }

  function applyPreset() {
    const dates = presetDates(range.value);
    if (!dates) return;
    start.value = isoDate(dates[0]);
    end.value = isoDate(dates[1]);
  }

  // The preset whose dates the inputs hold, else "custom".
  function matchPreset() {
    const found = Array.from(range.options).find((o) => {
      const dates = presetDates(o.value);
      return dates && isoDate(dates[0]) === start.value && isoDate(dates[1]) === end.value;
    });
    range.value = found ? found.value : "custom";
  }

  // ---- units ----------------------------------------------------------------
  function unitOf(metric) {
    const box = metricBoxes.find((b) => b.value === metric);
    return (box && box.dataset.unit) || "count";
  }

  function label(metric) {
    const box = metricBoxes.find((b) => b.value === metric);
    return box ? box.parentElement.textContent.trim() : metric;
  }

  function agentLabel(id) {
    return id === TOTAL ? "All agents (total)" : id;
  }

  // The largest duration unit in which `seconds` is at least 2 (90,000 s is 25 h).
  function durationUnit(seconds) {
    return DURATIONS.find((u) => seconds >= 2 * u.seconds) || DURATIONS[DURATIONS.length - 1];
  }

  function trim(value, digits) {
    return String(Number(value.toFixed(digits)));
  }

  function formatDuration(seconds) {
    const u = durationUnit(Math.abs(seconds));
    const v = seconds / u.seconds;
    return `${trim(v, v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${u.name}`;
  }

  // The table and the CSV agree: rates with 4 decimals, durations in human units.
  function format(metric, value) {
    if (value === null || value === undefined) return "";
    const unit = unitOf(metric);
    if (unit === "rate") return Number(value).toFixed(4);
    if (unit === "duration") return formatDuration(Number(value));
    return typeof value === "number" ? value.toLocaleString("en-US") : String(value);
  }

  // Tooltips say a bit more: a rate as a percentage, a duration in seconds too.
  function describeValue(metric, value) {
    const unit = unitOf(metric);
    if (unit === "rate") return `${trim(Number(value) * 100, 2)} %`;
    if (unit === "duration") return `${formatDuration(value)} (${trim(Number(value), 3)} s)`;
    return format(metric, value);
  }

  // ---- selection and URL ----------------------------------------------------
  function selection() {
    return {
      range: range.value,
      start: start.value,
      end: end.value,
      scale: scale.value,
      metrics: metricBoxes.filter((b) => b.checked).map((b) => b.value),
      agent: agent.value,
      compare: agent.value ? compare.value : "",
      total: total.checked,
    };
  }

  // What the export is asked for: the CSV link and the page's own data.
  function exportQuery(sel, extra) {
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

  // Every row carries its status; the all-agents total when it is shown.
  function dataFlags(sel) {
    return sel.total ? { status: "1", total: "1" } : { status: "1" };
  }

  // The page's own URL: the whole selection, so a link reopens this view.
  function pageQuery(sel) {
    const params = exportQuery(sel);
    if (sel.range !== "custom") params.set("range", sel.range);
    if (sel.compare) params.set("compare", sel.compare);
    if (!sel.total) params.set("total", "0");
    return params;
  }

  function setStatus(text, isError) {
    status.textContent = text;
    status.classList.toggle("error", Boolean(isError));
  }

  function initialise() {
    const params = new URLSearchParams(window.location.search);
    if (params.get("range") && Array.from(range.options).some((o) => o.value === params.get("range"))) {
      range.value = params.get("range");
    } else {
      range.value = params.get("start") || params.get("end") ? "custom" : "30";
    }
    applyPreset();
    if (params.get("end")) end.value = params.get("end");
    if (params.get("start")) start.value = params.get("start");
    if (range.value === "custom" && !start.value) {
      range.value = "30";
      applyPreset();
    }
    if (params.get("scale")) scale.value = params.get("scale");
    if (params.get("metrics")) {
      const wanted = params.get("metrics").split(",");
      metricBoxes.forEach((b) => (b.checked = wanted.includes(b.value)));
    }
    total.checked = params.get("total") !== "0";
    // Agents named in the address are only wishes: they are selected once the
    // export lists them, so a crafted ?agent= never reaches the Export link.
    requested.set(agent, params.get("agent"));
    requested.set(compare, params.get("compare"));
    syncCompare();
  }

  function addOption(select, id) {
    const existing = Array.from(select.options).find((o) => o.value === id);
    if (existing) return existing;
    const option = document.createElement("option");
    option.value = id;
    option.textContent = id;
    select.appendChild(option);
    return option;
  }

  // Comparing needs a first agent; an agent is not compared with itself.
  function syncCompare() {
    compare.disabled = !agent.value;
    Array.from(compare.options).forEach((o) => (o.disabled = Boolean(o.value) && o.value === agent.value));
    if (!agent.value || compare.value === agent.value) compare.value = "";
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
    for (const select of [agent, compare]) {
      const chosen = select.value;
      select.length = 1; // keep "All agents" / "No other agent"
      body.agents.forEach((id) => addOption(select, id));
      if (chosen) addOption(select, chosen).selected = true;
      const wish = requested.get(select);
      requested.delete(select);
      if (wish && body.agents.includes(wish)) select.value = wish;
    }
    syncCompare();
  }

  async function refresh(withAgents) {
    const mine = ++generation;
    let sel = selection();
    // The CSV of what the table shows (the compared agent is its own export).
    exportLink.href = new URL(`?${exportQuery(sel, dataFlags(sel))}`, ROOT).href;
    history.replaceState(null, "", `?${pageQuery(sel)}`);
    shareUrl.hidden = true;
    document.body.dataset.state = "loading";
    if (!sel.metrics.length) {
      setStatus("Choose at least one metric.", true);
      document.body.dataset.state = "error";
      return;
    }
    setStatus("Loading…");
    try {
      if (withAgents) {
        await loadAgents(sel);
        sel = selection();
        if (mine !== generation) return;
        exportLink.href = new URL(`?${exportQuery(sel, dataFlags(sel))}`, ROOT).href;
        history.replaceState(null, "", `?${pageQuery(sel)}`);
      }
      const json = { format: "json" };
      const requests = [fetchJson(new URL(`?${exportQuery(sel, { ...dataFlags(sel), ...json })}`, ROOT))];
      if (sel.compare) {
        const other = { ...sel, agent: sel.compare, total: false };
        requests.push(fetchJson(new URL(`?${exportQuery(other, { ...dataFlags(other), ...json })}`, ROOT)));
      }
      const parts = await Promise.all(requests);
      if (mine !== generation) return;
      const rows = parts.flat().sort((a, b) => (a.date < b.date ? -1 : a.date > b.date ? 1 : a.agent_id < b.agent_id ? -1 : 1));
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
    let who = sel.agent ? `agent ${sel.agent}` : "all agents";
    if (sel.compare) who += ` compared with ${sel.compare}`;
    if (sel.total && sel.agent) who += ", with all agents' total";
    return `${what} per ${sel.scale}, ${sel.start} to ${sel.end}, ${who}`;
  }

  // ---- table ----------------------------------------------------------------
  let shown = null;
  function render(sel, rows) {
    shown = { sel, rows };
    renderTable(sel, rows);
    renderCharts(sel, rows);
  }

  function cell(tag, text, className) {
    const node = document.createElement(tag);
    node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function renderTable(sel, rows) {
    const table = document.getElementById("numbers");
    document.getElementById("table-caption").textContent = describe(sel);
    const head = document.createElement("tr");
    ["Date", "Agent", ...sel.metrics.map(label), "Status"].forEach((text, i) => {
      const th = cell("th", text, i > 1 && i <= sel.metrics.length + 1 ? "num" : "");
      th.scope = "col";
      head.appendChild(th);
    });
    table.tHead.replaceChildren(head);
    const body = document.createDocumentFragment();
    rows.forEach((row) => {
      const tr = document.createElement("tr");
      tr.dataset.status = row.status;
      if (row.agent_id === TOTAL) tr.className = "total";
      const date = cell("th", row.date);
      date.scope = "row";
      tr.appendChild(date);
      tr.appendChild(cell("td", agentLabel(row.agent_id)));
      sel.metrics.forEach((m) => {
        const td = cell("td", format(m, row[m]), "num");
        if (unitOf(m) === "duration" && row[m] !== null) td.title = `${row[m]} s`;
        tr.appendChild(td);
      });
      tr.appendChild(cell("td", STATUS_TEXT[row.status] || ""));
      body.appendChild(tr);
    });
    table.tBodies[0].replaceChildren(body);
  }

  // ---- charts ---------------------------------------------------------------
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

  function marker(shape, cx, cy, colour, hollow, parent) {
    const paint = hollow ? { fill: "#ffffff", stroke: colour, "stroke-width": 2 } : { fill: colour };
    const r = 4;
    if (shape === "square") return el("rect", { x: cx - r, y: cy - r, width: 2 * r, height: 2 * r, ...paint }, parent);
    if (shape === "triangle") {
      return el("polygon", { points: `${cx},${cy - r - 1} ${cx + r + 1},${cy + r} ${cx - r - 1},${cy + r}`, ...paint }, parent);
    }
    if (shape === "diamond") {
      return el("polygon", { points: `${cx},${cy - r - 1} ${cx + r + 1},${cy} ${cx},${cy + r + 1} ${cx - r - 1},${cy}`, ...paint }, parent);
    }
    return el("circle", { cx, cy, r, ...paint }, parent);
  }

  function renderCharts(sel, rows) {
    const periods = Array.from(new Set(rows.map((r) => r.date))).sort();
    const statusOf = new Map(rows.map((r) => [r.date, r.status]));
    const agents = Array.from(new Set(rows.map((r) => r.agent_id))).sort();
    const container = document.getElementById("charts");
    const figures = UNITS.map(({ unit, title }) => {
      const metrics = sel.metrics.filter((m) => unitOf(m) === unit);
      if (!metrics.length) return null;
      return chart(sel, rows, periods, statusOf, agents, unit, title, metrics);
    }).filter(Boolean);
    container.replaceChildren(...figures);
    document.getElementById("chart-caption").textContent = describe(sel);
  }

  function chart(sel, rows, periods, statusOf, agents, unit, title, metrics) {
    const series = [];
    metrics.forEach((metric) => {
      agents.forEach((who) => {
        const byDate = new Map(rows.filter((r) => r.agent_id === who).map((r) => [r.date, r[metric]]));
        series.push({
          metric,
          agent: who,
          colour: COLOURS[series.length % COLOURS.length],
          shape: SHAPES[agents.indexOf(who) % SHAPES.length],
          values: periods.map((p) => (byDate.has(p) ? byDate.get(p) : null)),
        });
      });
    });
    const all = series.flatMap((s) => s.values).filter((v) => v !== null).map(Number);
    const peak = all.length ? Math.max(...all) : 0;
    // Durations are drawn in one human unit, chosen by the largest value.
    const scaleUnit = unit === "duration" ? durationUnit(peak) : null;
    const factor = unit === "rate" ? 100 : scaleUnit ? 1 / scaleUnit.seconds : 1;
    const top = unit === "rate" ? Math.min(100, niceMax(peak * 100)) : niceMax(peak * factor);
    const suffix = unit === "rate" ? " %" : scaleUnit ? ` ${scaleUnit.name}` : "";

    // The drawing is as wide as its box, so text keeps its size on a phone.
    const box = document.getElementById("charts").clientWidth || 800;
    const W = Math.max(320, Math.min(1100, box)), H = W < 500 ? 220 : 260;
    const L = 64, R = 40, T = 16, B = 40;
    const step = periods.length > 1 ? (W - L - R) / (periods.length - 1) : W - L - R;
    const x = (i) => L + (periods.length > 1 ? i * step : (W - L - R) / 2);
    const y = (v) => T + (H - T - B) * (1 - (v * factor) / top);

    const figure = document.createElement("figure");
    figure.className = "chart";
    figure.dataset.unit = unit;
    const id = `chart-${unit}`;
    const heading = cell("h3", title + (scaleUnit ? ` (${scaleUnit.name})` : unit === "rate" ? " (%)" : ""));
    heading.id = `${id}-title`;
    figure.appendChild(heading);
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": `${id}-svg-title ${id}-svg-desc` });
    el("title", { id: `${id}-svg-title` }, svg).textContent = `${title}: ${metrics.map(label).join(", ")}`;
    const partial = periods.filter((p) => statusOf.get(p) === "partial").length;
    const provisional = periods.filter((p) => statusOf.get(p) === "provisional").length;
    el("desc", { id: `${id}-svg-desc` }, svg).textContent =
      `${periods.length} periods, ${series.length} lines` +
      (partial ? `; ${partial} still running (dashed)` : "") +
      (provisional ? `; ${provisional} provisional (shaded)` : "") +
      "; the numbers are in the table below.";

    // Provisional periods: a shaded band each, behind everything else.
    const bands = el("g", { class: "provisional", "aria-hidden": "true" }, svg);
    periods.forEach((p, i) => {
      if (statusOf.get(p) !== "provisional") return;
      const half = periods.length > 1 ? step / 2 : (W - L - R) / 2;
      const x0 = Math.max(L, x(i) - half), x1 = Math.min(W - R, x(i) + half);
      el("rect", { x: x0, y: T, width: Math.max(1, x1 - x0), height: H - T - B, fill: "#fff1cc", "data-date": p }, bands);
    });

    const grid = el("g", { class: "grid", "aria-hidden": "true" }, svg);
    const tick = (v) => (Number.isInteger(v) ? v.toLocaleString("en-US") : trim(v, 2));
    for (let i = 0; i <= 4; i++) {
      const v = (top * i) / 4;
      const gy = T + (H - T - B) * (1 - i / 4);
      el("line", { x1: L, x2: W - R, y1: gy, y2: gy, stroke: "#c8c8c8", "stroke-width": 1 }, grid);
      const t = el("text", { x: L - 8, y: gy + 4, "text-anchor": "end", fill: "#333333", "font-size": 12 }, grid);
      t.textContent = tick(v) + suffix;
    }
    const labelWidth = 84;
    const every = Math.max(1, Math.ceil(periods.length / Math.max(1, Math.floor((W - L - R) / labelWidth))));
    // Centred under their points; the margins leave room for half a label.
    periods.forEach((p, i) => {
      if (i % every !== 0) return;
      const t = el("text", { x: x(i), y: H - B + 20, "text-anchor": "middle", fill: "#333333", "font-size": 12 }, grid);
      t.textContent = p;
    });
    el("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, stroke: "#333333", "stroke-width": 1 }, grid);

    series.forEach((s) => {
      const g = el("g", { class: "series", "data-metric": s.metric, "data-agent": s.agent }, svg);
      const width = s.agent === TOTAL ? 4 : 2.5;
      // Solid between closed periods; a segment that reaches a partial period is dashed.
      let solid = "", dashed = "", prev = null;
      s.values.forEach((v, i) => {
        if (v === null) {
          prev = null;
          return;
        }
        const pt = `${x(i).toFixed(1)},${y(Number(v)).toFixed(1)}`;
        const open = statusOf.get(periods[i]) === "partial";
        if (prev !== null) {
          if (open || prev.open) dashed += `M${prev.pt}L${pt}`;
          else solid += (solid.endsWith(prev.pt) ? "" : `M${prev.pt}`) + `L${pt}`;
        } else if (!open) {
          solid += `M${pt}`;
        }
        prev = { pt, open };
      });
      if (solid) el("path", { d: solid, fill: "none", stroke: s.colour, "stroke-width": width, class: "closed" }, g);
      if (dashed) {
        el("path", { d: dashed, fill: "none", stroke: s.colour, "stroke-width": width, "stroke-dasharray": "6 5", class: "partial" }, g);
      }
      s.values.forEach((v, i) => {
        if (v === null) return;
        const st = statusOf.get(periods[i]);
        const m = marker(s.shape, x(i), y(Number(v)), s.colour, st === "partial", g);
        m.setAttribute("data-status", st || "");
        const note = st && st !== "final" ? ` (${STATUS_TEXT[st]})` : "";
        el("title", {}, m).textContent = `${label(s.metric)}, ${agentLabel(s.agent)}, ${periods[i]}: ${describeValue(s.metric, v)}${note}`;
      });
    });
    // "so far" above the last partial period.
    const last = periods.length - 1;
    if (last >= 0 && statusOf.get(periods[last]) === "partial") {
      const t = el("text", { x: x(last), y: T + 12, "text-anchor": periods.length > 1 ? "end" : "middle", fill: "#333333", "font-size": 12, class: "so-far" }, svg);
      t.textContent = "so far";
    }
    figure.appendChild(svg);

    const legend = document.createElement("ul");
    legend.className = "legend";
    legend.setAttribute("aria-label", `${title} legend`);
    series.forEach((s) => {
      const li = document.createElement("li");
      const key = el("svg", { width: 36, height: 12, "aria-hidden": "true" });
      el("line", { x1: 0, x2: 36, y1: 6, y2: 6, stroke: s.colour, "stroke-width": s.agent === TOTAL ? 4 : 2.5 }, key);
      marker(s.shape, 18, 6, s.colour, false, key);
      li.appendChild(key);
      li.append(` ${label(s.metric)} · ${agentLabel(s.agent)}`);
      legend.appendChild(li);
    });
    figure.appendChild(legend);
    return figure;
  }

  // ---- copy link ----------------------------------------------------------
  async function copyLink() {
    const link = window.location.href;
    try {
      await navigator.clipboard.writeText(link);
      setStatus("Link copied: it opens this view.");
    } catch (err) {
      // No clipboard access (an insecure origin, or refused): show the link to copy by hand.
      shareUrl.value = link;
      shareUrl.hidden = false;
      shareUrl.focus();
      shareUrl.select();
      setStatus("Copy the selected link (Ctrl+C or ⌘C).");
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    refresh(true);
  });
  range.addEventListener("change", () => {
    applyPreset();
    refresh(true);
  });
  [start, end].forEach((input) =>
    input.addEventListener("change", () => {
      matchPreset();
      refresh(true);
    }),
  );
  agent.addEventListener("change", () => {
    syncCompare();
    refresh(false);
  });
  [scale, compare, total, ...metricBoxes].forEach((input) => input.addEventListener("change", () => refresh(false)));
  copyButton.addEventListener("click", copyLink);

  let resizing = 0;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => shown && renderCharts(shown.sel, shown.rows), 150);
  });

  initialise();
  refresh(true);
})();
