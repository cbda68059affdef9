// The dashboard page: polls /dashboard.json every second, keeps the last
// minutes client-side and draws them with uPlot (bundled before this file).
/* global uPlot */
(function () {
  "use strict";
  const KEEP = 300;
  const cols = { t: [], r2xx: [], r3xx: [], r4xx: [], r5xx: [], p50: [], p90: [], p99: [] };
  let since = 0;
  let events = [];
  let lastEventT = 0;
  let rateChart;
  let latencyChart;
  let observer;
  const $ = (id) => document.getElementById(id);
  const dash = "\u2013";

  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  const axis = () => ({
    stroke: css("--muted"),
    grid: { stroke: css("--line") },
    ticks: { stroke: css("--line") },
  });

  function opts(series, fmt) {
    const el = $(series === "rate" ? "rate-chart" : "latency-chart");
    const lines = series === "rate"
      ? [["2xx", "#2da44e"], ["3xx", "#0969da"], ["4xx", "#bf8700"], ["5xx", "#cf222e"]]
      : [["p50", "#0969da"], ["p90", "#8250df"], ["p99", "#cf222e"]];
    return {
      width: Math.max(200, el.clientWidth),
      height: 200,
      series: [
        {},
        ...lines.map(([label, stroke]) => ({
          label,
          stroke,
          width: 1.5,
          value: (_u, v) => (v == null ? dash : fmt(v)),
        })),
      ],
      legend: { live: false },
      axes: [
        Object.assign(axis(), {
          space: 90,
          values: (_u, vals) => vals.map((v) => new Date(v * 1000).toLocaleTimeString()),
        }),
        Object.assign(axis(), { size: 72, values: (_u, vals) => vals.map(fmt) }),
      ],
      scales: { x: { time: true } },
    };
  }

  const fmtRate = (v) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));
  function fmtSeconds(v) {
    if (v == null || !isFinite(v)) return dash;
    if (v === 0) return "0";
    if (v < 0.001) return (v * 1e6).toFixed(0) + " µs";
    if (v < 1) return (v * 1e3).toFixed(v < 0.01 ? 2 : 1) + " ms";
    return v.toFixed(2) + " s";
  }
  function fmtBytes(v) {
    if (v == null) return dash;
    const units = ["B", "KiB", "MiB", "GiB"];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return v.toFixed(i === 0 ? 0 : 1) + " " + units[i];
  }
  function fmtAge(seconds) {
    if (seconds == null || !isFinite(seconds)) return dash;
    const s = Math.max(0, Math.round(seconds));
    if (s < 120) return s + " s";
    if (s < 7200) return Math.round(s / 60) + " min";
    return (s / 3600).toFixed(1) + " h";
  }
  const cell = (text, cls) => {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  };
  const num = (v, f) => (v == null ? dash : f(v));

  // Colours come from the stylesheet: a change of scheme draws the charts anew.
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
    rateChart?.destroy();
    latencyChart?.destroy();
    rateChart = latencyChart = undefined;
    drawCharts();
  });

  function drawCharts() {
    const x = cols.t.map((t) => t / 1000);
    const rate = [x, cols.r2xx, cols.r3xx, cols.r4xx, cols.r5xx];
    const lat = [x, cols.p50, cols.p90, cols.p99];
    if (!rateChart) {
      rateChart = new uPlot(opts("rate", fmtRate), rate, $("rate-chart"));
      latencyChart = new uPlot(opts("latency", fmtSeconds), lat, $("latency-chart"));
      observer ??= new ResizeObserver(() => {
        rateChart?.setSize({ width: Math.max(200, $("rate-chart").clientWidth), height: 200 });
        latencyChart?.setSize({
          width: Math.max(200, $("latency-chart").clientWidth),
          height: 200,
        });
      });
      observer.observe(document.querySelector("main"));
    } else {
      rateChart.setData(rate);
      latencyChart.setData(lat);
    }
    const last = (k) => cols[k][cols[k].length - 1];
    $("rate-now").textContent = ["2xx", "3xx", "4xx", "5xx"]
      .map((c) => c + " " + num(last("r" + c), fmtRate)).join(" · ");
    $("latency-now").textContent = ["p50", "p90", "p99"]
      .map((p) => p + " " + fmtSeconds(last(p))).join(" · ");
  }

  function renderWorkers(workers, now) {
    const body = $("workers").tBodies[0];
    const rows = workers.slice().sort((a, b) => a.slot - b.slot || a.generation - b.generation)
      .map((w) => {
        const tr = document.createElement("tr");
        tr.dataset.slot = String(w.slot);
        const up = w.spawned_at ? (now - Date.parse(w.spawned_at)) / 1000 : null;
        tr.append(
          cell(String(w.slot)),
          cell(w.pid == null ? dash : String(w.pid)),
          cell(w.state, w.state),
          cell(String(w.generation)),
          cell(num(w.cpu, (v) => (v * 100).toFixed(1) + " %")),
          cell(num(w.memory_bytes, fmtBytes)),
          cell(
            w.heap_used_bytes == null ? dash : fmtBytes(w.heap_used_bytes) +
              (w.heap_limit_bytes == null ? "" : " / " + fmtBytes(w.heap_limit_bytes)),
          ),
          cell(
            w.loop_delay_p99_seconds == null ? dash : fmtSeconds(w.loop_delay_p99_seconds) +
              (w.loop_delay_max_seconds == null
                ? ""
                : " / " + fmtSeconds(w.loop_delay_max_seconds)),
          ),
          cell(fmtAge(up)),
          cell(String(w.requests)),
          cell(num(w.active_requests, String)),
          cell(String(w.restarts)),
        );
        return tr;
      });
    body.replaceChildren(...rows);
  }

  function renderTimeline() {
    const items = events.slice().reverse().map((e) => {
      const li = document.createElement("li");
      li.className = e.kind;
      const time = document.createElement("time");
      time.dateTime = new Date(e.t).toISOString();
      time.textContent = new Date(e.t).toLocaleTimeString();
      const kind = document.createElement("span");
      kind.className = "kind";
      kind.textContent = e.kind;
      li.append(time, kind, document.createTextNode(e.text));
      return li;
    });
    $("timeline").replaceChildren(...items);
  }

  function renderList(id, entries) {
    const nodes = [];
    for (const [k, v] of entries) {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = v == null || v === "" ? dash : String(v);
      nodes.push(dt, dd);
    }
    $(id).replaceChildren(...nodes);
  }

  function apply(doc) {
    const s = doc.series;
    for (const k of Object.keys(cols)) cols[k].push(...(s[k] || []));
    const extra = cols.t.length - KEEP;
    if (extra > 0) { for (const k of Object.keys(cols)) cols[k].splice(0, extra); }
    if (s.t.length > 0) since = s.t[s.t.length - 1];
    // The data cursor is the last sample; an event between samples may come twice.
    const fresh = doc.events.filter((e) => e.t > lastEventT);
    if (fresh.length > 0) lastEventT = fresh[fresh.length - 1].t;
    events = events.concat(fresh).slice(-200);
    const st = doc.status;
    document.title = st.service_name + " · forklift";
    $("title").textContent = st.service_name;
    $("summary").textContent = "master " + st.pid + " · forklift " + st.version + " · up " +
      fmtAge(st.uptime_s) + " · " + st.totals.workers + " ready · " + st.totals.requests +
      " requests · " + st.totals.restarts + " restarts";
    $("live").textContent = st.ready ? "ready" : "not ready";
    $("live").className = "badge " + (st.ready ? "ok" : "bad");
    drawCharts();
    renderWorkers(st.workers, doc.now);
    renderTimeline();
    const o = doc.otlp;
    renderList(
      "otlp",
      o == null ? [["OTLP export", "off"]] : [
        [
          "OTLP last success",
          o.last_success_at ? new Date(o.last_success_at).toLocaleTimeString() : dash,
        ],
        ["OTLP exports", o.exports],
        ["OTLP failures", o.failures],
        ["OTLP retries", o.retries],
        ["OTLP dropped", o.dropped],
      ],
    );
    renderList("settings", Object.entries(doc.settings));
  }

  async function poll() {
    try {
      const res = await fetch("/dashboard.json?since=" + since, { cache: "no-store" });
      if (!res.ok) throw new Error("HTTP " + res.status);
      apply(await res.json());
    } catch {
      $("live").textContent = "disconnected";
      $("live").className = "badge bad";
    }
    setTimeout(poll, 1000);
  }
  poll();
})();
