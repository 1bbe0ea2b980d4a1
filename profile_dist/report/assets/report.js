/* profile-dist report: draws every plot as inline SVG from the JSON embedded in the page.
 * Plain JavaScript, no library, no network. Every piece of data reaches the page through
 * textContent or an attribute value, never through innerHTML, so corpus text stays text. */
(function () {
  "use strict";

  var DATA = JSON.parse(document.getElementById("report-data").textContent);
  var SVGNS = "http://www.w3.org/2000/svg";
  var LEVEL = Math.round(100 * ((DATA.meta && DATA.meta.confidence_level) || 0.95));
  // Below this many pairs that tell a factor apart, a tau (and its interval) is too coarse to read as a finding.
  var MIN_DECIDED = (DATA.meta && DATA.meta.min_decided_pairs) || 0;
  function fewPairs(r) { return r.tau !== null && r.n_concordant + r.n_discordant < MIN_DECIDED; }

  // ---- small DOM helpers -------------------------------------------------------------------------
  function append(node, children) {
    (children || []).forEach(function (c) {
      if (c === null || c === undefined || c === false) return;
      node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    });
    return node;
  }
  function h(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return append(node, children);
  }
  function s(tag, attrs, children) {
    var node = document.createElementNS(SVGNS, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return append(node, children);
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
  function tip(node, str) { node.appendChild(s("title", {}, [str])); return node; }
  function unique(xs) { var seen = {}; return xs.filter(function (x) { if (seen[x]) return false; seen[x] = true; return true; }); }
  function byId(id) { return document.getElementById(id); }
  function svgRoot(width, height, cls, label) {
    return s("svg", { "class": "plot " + cls, width: width, height: height, viewBox: "0 0 " + width + " " + height,
      role: "img", "aria-label": label });
  }
  function figure(cls, caption, sub, plot) {
    return h("figure", { "class": "plot-figure " + cls }, [
      h("figcaption", {}, [caption, sub ? h("div", { "class": "sub" }, [sub]) : null]),
      h("div", { "class": "scroll" }, [plot])
    ]);
  }

  // ---- numbers and names -------------------------------------------------------------------------
  function fmt(v, digits) {
    if (v === null || v === undefined || isNaN(v)) return "n/a";
    var d = digits === undefined ? 2 : digits;
    return (v >= 0 ? "+" : "-") + Math.abs(v).toFixed(d);
  }
  function ci(lo, hi, digits) { return lo === null || lo === undefined ? "" : "[" + fmt(lo, digits) + ", " + fmt(hi, digits) + "]"; }
  function sourceName(r) { return r.labeler + "/" + r.setting; }
  function excludesZero(lo, hi) { return lo !== null && lo !== undefined && hi !== null && hi !== undefined && (lo > 0 || hi < 0); }
  function settingRank(setting) { return { human: 0, evaluation: 1, generation: 2 }[setting] === undefined ? 3 : { human: 0, evaluation: 1, generation: 2 }[setting]; }
  function sourceOrder(a, b) {
    var sa = a.split("/"), sb = b.split("/");
    var ra = settingRank(sa[sa.length - 1]), rb = settingRank(sb[sb.length - 1]);
    if (ra !== rb && (ra === 0 || rb === 0)) return ra - rb;  // humans first, then models by name
    return a < b ? -1 : a > b ? 1 : 0;
  }
  function clip(str, n) { return str.length > n ? str.slice(0, n - 1) + "\u2026" : str; }
  // Measured with the page's own font (a canvas needs no layout), so labels never run into the plot.
  var MEASURE = document.createElement("canvas").getContext("2d");
  var FONT_FAMILY = window.getComputedStyle(document.documentElement).fontFamily;
  function textWidth(str, px, bold) {
    if (!MEASURE) return str.length * (px || 13) * (bold ? 0.68 : 0.62);
    MEASURE.font = (bold ? "700 " : "") + (px || 13) + "px " + FONT_FAMILY;
    return Math.ceil(MEASURE.measureText(str).width) + 2;
  }

  // ---- colours: ColorBrewer PuOr (colour-blind safe), orange = less, purple = more ----------------
  var PUOR = ["#7f3b08", "#b35806", "#e08214", "#fdb863", "#fee0b6", "#f7f7f7", "#d8daeb", "#b2abd2", "#8073ac", "#542788", "#2d004b"];
  // Okabe-Ito, yellow last (weak on white); beyond eight, dashes tell lines apart.
  var CATEGORICAL = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442"];
  var DASHES = ["", "6 3", "2 3", "8 3 2 3"];
  function hexToRgb(hex) { var n = parseInt(hex.slice(1), 16); return [(n >> 16) & 255, (n >> 8) & 255, n & 255]; }
  function ramp(colors, t) {
    t = Math.max(0, Math.min(1, t));
    var x = t * (colors.length - 1), i = Math.min(colors.length - 2, Math.floor(x)), f = x - i;
    var a = hexToRgb(colors[i]), b = hexToRgb(colors[i + 1]);
    return "rgb(" + [0, 1, 2].map(function (k) { return Math.round(a[k] + (b[k] - a[k]) * f); }).join(",") + ")";
  }
  function diverging(v, max) { return v === null || v === undefined ? "#ffffff" : ramp(PUOR, 0.5 + v / (2 * max)); }
  function sequential(t) { return ramp(PUOR.slice(5), t); }  // 0 = white, 1 = deep purple
  function inkOn(fill) {
    var m = /rgb\((\d+),(\d+),(\d+)\)/.exec(fill); if (!m) return "#1b1b1b";
    var l = (0.299 * m[1] + 0.587 * m[2] + 0.114 * m[3]) / 255;
    return l < 0.5 ? "#ffffff" : "#1b1b1b";
  }

  // ---- what the reader chose -----------------------------------------------------------------------
  var TASKS = unique(DATA.influence.map(function (r) { return r.task; })).sort();
  var SOURCES = unique(DATA.influence.map(sourceName)).sort(sourceOrder);
  var FACTORS = unique(DATA.influence.map(function (r) { return r.factor; })).sort();
  var state = { task: "", hidden: {}, sort: "name", metric: "spearman_rho", selected: null };
  var TAU_MAX = Math.max(0.25, Math.ceil(4 * Math.max.apply(null, [0].concat(DATA.influence.map(function (r) {
    return r.tau === null || fewPairs(r) ? 0 : Math.abs(r.tau); })))) / 4);
  var SOURCE_COLOR = {}, SOURCE_SHAPE = {};
  SOURCES.forEach(function (src, i) {
    SOURCE_COLOR[src] = CATEGORICAL[i % CATEGORICAL.length];
    SOURCE_SHAPE[src] = src.slice(src.lastIndexOf("/") + 1);
  });
  // What a simulated model produced (results.json "simulated"): every place that names it says so.
  var SIM = DATA.simulated || {}, SIM_MARK = " (simulated)";
  function setOf(xs) { var o = {}; (xs || []).forEach(function (x) { o[x] = true; }); return o; }
  var SIM_SOURCES = setOf(SIM.sources), SIM_FACTORS = setOf(SIM.factors), SIM_MODELS = setOf(SIM.models);
  function simModelName(m) { return !!(SIM_MODELS[m] || SIM_SOURCES[m + "/evaluation"] || SIM_SOURCES[m + "/generation"]); }
  function simSource(src) { return SIM_SOURCES[src] ? src + SIM_MARK : src; }
  function simFactor(f) { return SIM_FACTORS[f] ? f + SIM_MARK : f; }
  function simModel(m) { return simModelName(m) ? m + SIM_MARK : m; }
  function simAttrs(attrs, on) {
    if (on) { attrs["class"] = ((attrs["class"] || "") + " simulated").trim(); attrs["data-simulated"] = "true"; }
    return attrs;
  }
  var FACTOR_STYLE = {};
  FACTORS.forEach(function (f, i) { FACTOR_STYLE[f] = { color: CATEGORICAL[i % 7], dash: DASHES[Math.floor(i / 7) % DASHES.length] }; });

  function visibleTasks() { return TASKS.filter(function (t) { return !state.task || t === state.task; }); }
  function visible(src) { return !state.hidden[src]; }
  function influenceOf(task) { return DATA.influence.filter(function (r) { return r.task === task && visible(sourceName(r)); }); }
  function sortFactors(rows) {
    var factors = unique(rows.map(function (r) { return r.factor; })).sort();
    if (state.sort === "name") return factors;
    var score = {};
    factors.forEach(function (f) {
      var taus = rows.filter(function (r) { return r.factor === f && r.tau !== null; }).map(function (r) { return r.tau; });
      if (!taus.length) { score[f] = -1; return; }
      score[f] = state.sort === "strongest"
        ? Math.max.apply(null, taus.map(Math.abs))
        : Math.max.apply(null, taus) - Math.min.apply(null, taus);
    });
    return factors.sort(function (a, b) { return score[b] - score[a] || (a < b ? -1 : 1); });
  }
  function cellKey(r) { return [r.task, r.labeler, r.setting, r.factor].join("\u0001"); }

  // ---- markers: shape by setting, filled when the interval excludes zero ----------------------------
  function marker(x, y, src, filled) {
    var color = SOURCE_COLOR[src], fill = filled ? color : "#ffffff", shape = SOURCE_SHAPE[src];
    var attrs = { fill: fill, stroke: color, "stroke-width": 1.6 };
    if (shape === "evaluation") return s("rect", Object.assign({ x: x - 4.5, y: y - 4.5, width: 9, height: 9 }, attrs));
    if (shape === "generation") return s("path", Object.assign({ d: "M" + x + "," + (y - 5.5) + "L" + (x + 5.5) + "," + (y + 4.5) + "L" + (x - 5.5) + "," + (y + 4.5) + "Z" }, attrs));
    return s("circle", Object.assign({ cx: x, cy: y, r: 4.8 }, attrs));
  }
  function sourceLegend(sources) {
    var x = 0, items = [];
    sources.forEach(function (src) {
      items.push(s("g", { transform: "translate(" + x + ",0)" }, [marker(6, 8, src, true),
        s("text", simAttrs({ x: 16, y: 12, "font-size": 12 }, SIM_SOURCES[src]), [simSource(src)])]));
      x += 34 + textWidth(simSource(src), 12);
    });
    items.push(s("g", { transform: "translate(" + x + ",0)" }, [
      s("circle", { cx: 6, cy: 8, r: 4.8, fill: "#fff", stroke: "#555", "stroke-width": 1.6 }),
      s("text", { x: 16, y: 12, "font-size": 12, fill: "#5a5a5a" }, ["hollow: interval includes 0"])]));
    return { node: s("g", { "class": "legend" }, items), width: x + 200 };
  }

  // ---- axis helper for a horizontal value scale ---------------------------------------------------
  function hAxis(x0, width, lo, hi, top, bottom, ticks) {
    var scale = function (v) { return x0 + (v - lo) / (hi - lo) * width; };
    var g = s("g", { "class": "axis" });
    ticks.forEach(function (t) {
      g.appendChild(s("line", { x1: scale(t), x2: scale(t), y1: top, y2: bottom, "class": t === 0 ? "zero" : "grid" }));
      g.appendChild(s("text", { x: scale(t), y: top - 4, "font-size": 11, "text-anchor": "middle", fill: "#5a5a5a" }, [t === 0 ? "0" : fmt(t, Math.abs(t * 2) % 1 ? 2 : 1)]));
    });
    return { g: g, scale: scale };
  }
  function ticksFor(lo, hi) {
    var step = (hi - lo) > 2.5 ? 1 : (hi - lo) > 1.2 ? 0.5 : 0.25, out = [];
    for (var t = Math.ceil(lo / step) * step; t <= hi + 1e-9; t += step) out.push(Math.round(t * 100) / 100);
    return out;
  }

  // ---- 1. heatmap of tau per task (factors x sources) ---------------------------------------------
  function renderHeatmaps() {
    var host = clear(byId("heatmap-plots"));
    visibleTasks().forEach(function (task) {
      var rows = influenceOf(task);
      var sources = unique(rows.map(sourceName)).sort(sourceOrder);
      var factors = sortFactors(rows);
      if (!sources.length) { host.appendChild(h("p", { "class": "empty" }, ["Task " + task + ": every source is filtered out."])); return; }
      var byKey = {};
      rows.forEach(function (r) { byKey[sourceName(r) + "\u0001" + r.factor] = r; });
      var labelW = Math.max.apply(null, sources.map(function (src) {
        return Math.max(textWidth(clip(src.slice(0, src.lastIndexOf("/")), 22), 12), textWidth(simSource(src).slice(src.lastIndexOf("/") + 1), 11)); }));
      var cw = Math.max(104, Math.min(176, labelW + 14)), ch = 42, left = 14 + Math.max.apply(null, factors.map(function (f) { return textWidth(simFactor(f), 13); })), top = 46;
      var width = left + cw * sources.length + 10, height = top + ch * factors.length + 6;
      var svg = svgRoot(width, height, "heatmap", "Heatmap of tau for task " + task);
      svg.setAttribute("data-task", task);
      sources.forEach(function (src, j) {
        var parts = src.split("/"), setting = parts.pop(), labeler = parts.join("/");
        var x = left + cw * j + cw / 2;
        svg.appendChild(tip(s("text", { x: x, y: 18, "font-size": 12, "text-anchor": "middle", "font-weight": 600 }, [clip(labeler, 22)]), src));
        svg.appendChild(s("text", simAttrs({ "class": "source-setting", "data-source": src, x: x, y: 34, "font-size": 11, "text-anchor": "middle",
          "font-style": "italic", fill: "#5a5a5a" }, SIM_SOURCES[src]), [setting + (SIM_SOURCES[src] ? SIM_MARK : "")]));
      });
      factors.forEach(function (factor, i) {
        var y = top + ch * i;
        svg.appendChild(s("text", simAttrs({ "class": "factor-label", "data-factor": factor, x: left - 8, y: y + ch / 2 + 4, "font-size": 13,
          "text-anchor": "end" }, SIM_FACTORS[factor]), [simFactor(factor)]));
        sources.forEach(function (src, j) {
          var r = byKey[src + "\u0001" + factor];
          var x = left + cw * j;
          if (!r) {
            svg.appendChild(s("rect", { x: x + 1, y: y + 1, width: cw - 2, height: ch - 2, fill: "#ffffff", stroke: "#eeeeee" }));
            return;
          }
          var few = fewPairs(r);
          var fill = few ? "#f2f2f2" : diverging(r.tau, TAU_MAX), ink = few ? "#6b6b6b" : inkOn(fill), sig = !few && excludesZero(r.ci_low, r.ci_high);
          var selected = state.selected && cellKey(state.selected) === cellKey(r);
          var simulated = !!(SIM_SOURCES[src] || SIM_FACTORS[factor]);
          var g = s("g", { "class": "hm-cell" + (selected ? " selected" : ""), tabindex: 0, role: "button",
            "data-task": task, "data-source": src, "data-labeler": r.labeler, "data-setting": r.setting, "data-factor": factor,
            "data-simulated": simulated ? "true" : "false",
            "aria-label": simSource(src) + ", " + simFactor(factor) + ": tau " + fmt(r.tau) + " " + ci(r.ci_low, r.ci_high) + ". Show deciding pairs." });
          g.appendChild(s("rect", { "class": "cell", x: x + 1, y: y + 1, width: cw - 2, height: ch - 2, rx: 3, fill: fill,
            stroke: sig ? "#1b1b1b" : "#e0e0e0", "stroke-width": sig ? 1.5 : 1 }));
          g.appendChild(s("text", { x: x + cw / 2, y: y + 18, "font-size": 13, "text-anchor": "middle", fill: ink, "font-weight": sig ? 700 : 400 },
            [r.tau === null ? "n/a" : fmt(r.tau) + (sig ? " *" : "")]));
          g.appendChild(s("text", { x: x + cw / 2, y: y + 33, "font-size": 10, "text-anchor": "middle", fill: ink },
            [few ? "only " + (r.n_concordant + r.n_discordant) + " pair(s) differ" : ci(r.ci_low, r.ci_high)]));
          tip(g, simSource(src) + " \u00b7 " + simFactor(factor) + " (task " + task + ")\ntau " + fmt(r.tau, 3) + "  " + LEVEL + "% CI " + (ci(r.ci_low, r.ci_high, 3) || "n/a") +
            "\nP(preferred has more) " + (r.p_preferred_more === null ? "n/a" : Math.round(100 * r.p_preferred_more) + "%") +
            "\nC " + r.n_concordant + ", D " + r.n_discordant + ", tied values " + r.n_ties + "\nClick to see the pairs it decided.");
          g.addEventListener("click", function () { select(r, true); });
          g.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); select(r, true); } });
          svg.appendChild(g);
        });
      });
      host.appendChild(figure("heatmap-figure", "Task: " + task,
        "Cell: tau and its " + LEVEL + "% interval; * and a dark border: the interval excludes 0; grey: fewer than " + MIN_DECIDED +
        " pairs differ on the factor, too few to read. Click a cell for its deciding pairs.", svg));
    });
    renderTauLegend();
  }
  function renderTauLegend() {
    var host = clear(byId("tau-legend"));
    var width = 360, svg = svgRoot(width, 44, "legend-scale", "Colour scale of tau");
    var grad = s("linearGradient", { id: "tau-gradient", x1: 0, x2: 1, y1: 0, y2: 0 });
    for (var i = 0; i <= 10; i++) grad.appendChild(s("stop", { offset: (i * 10) + "%", "stop-color": diverging(-TAU_MAX + i * TAU_MAX / 5, TAU_MAX) }));
    svg.appendChild(s("defs", {}, [grad]));
    svg.appendChild(s("rect", { x: 30, y: 6, width: 300, height: 14, fill: "url(#tau-gradient)", stroke: "#bbb" }));
    [-TAU_MAX, 0, TAU_MAX].forEach(function (v, k) {
      svg.appendChild(s("text", { x: 30 + 150 * k, y: 34, "font-size": 11, "text-anchor": "middle" }, [v === 0 ? "0" : fmt(v)]));
    });
    svg.appendChild(s("text", { x: 30, y: 44, "font-size": 10, fill: "#5a5a5a" }, ["preferred has less"]));
    svg.appendChild(s("text", { x: 330, y: 44, "font-size": 10, "text-anchor": "end", fill: "#5a5a5a" }, ["preferred has more"]));
    host.appendChild(svg);
  }

  // ---- 2. per factor: tau of every source with interval bars (forest plot) -------------------------
  function renderForests() {
    var host = clear(byId("forest-plots"));
    visibleTasks().forEach(function (task) {
      var rows = influenceOf(task);
      var sources = unique(rows.map(sourceName)).sort(sourceOrder);
      if (!sources.length) return;
      var factors = sortFactors(rows);
      var byKey = {};
      rows.forEach(function (r) { byKey[sourceName(r) + "\u0001" + r.factor] = r; });
      var legend = sourceLegend(sources);
      var left = 16 + Math.max.apply(null, factors.map(function (f) { return textWidth(simFactor(f), 13); })), plotW = 520, top = 48, rowH = 15;
      var defined = {};
      rows.forEach(function (r) { if (r.tau !== null) defined[r.factor] = true; });
      var fullH = sources.length * rowH + 10, emptyH = 22, bandTop = {}, y = top;
      factors.forEach(function (f) { bandTop[f] = y; y += defined[f] ? fullH : emptyH; });
      var width = Math.max(left + plotW + 60, legend.width), height = y + 8;
      var svg = svgRoot(width, height, "forest", "tau per factor and source, task " + task);
      svg.setAttribute("data-task", task);
      svg.appendChild(legend.node);
      var axis = hAxis(left, plotW, -1, 1, top, height - 6, [-1, -0.5, 0, 0.5, 1]);
      factors.forEach(function (factor, i) {
        var y0 = bandTop[factor], bandH = defined[factor] ? fullH : emptyH;
        if (i % 2 === 0) svg.appendChild(s("rect", { x: left, y: y0, width: plotW, height: bandH, fill: "#f4f4f6" }));
        svg.appendChild(s("text", simAttrs({ "class": "factor-label", "data-factor": factor, x: left - 8, y: y0 + bandH / 2 + 4, "font-size": 13, "text-anchor": "end",
          fill: defined[factor] ? "#1b1b1b" : "#8a8a8a" }, SIM_FACTORS[factor]), [simFactor(factor)]));
        if (!defined[factor]) svg.appendChild(s("text", { x: left + 8, y: y0 + bandH / 2 + 4, "font-size": 11, fill: "#6b6b6b" }, ["n/a: no source's pairs tell this factor apart"]));
      });
      svg.appendChild(axis.g);
      factors.forEach(function (factor, i) {
        if (!defined[factor]) return;
        sources.forEach(function (src, j) {
          var r = byKey[src + "\u0001" + factor], y = bandTop[factor] + 5 + rowH * j + rowH / 2;
          if (!r) return;
          var g = s("g", { "class": "forest-point", "data-source": src, "data-factor": factor, opacity: fewPairs(r) ? 0.35 : 1 });
          if (r.tau === null) {
            g.appendChild(s("text", { x: left + plotW + 6, y: y + 4, "font-size": 10, fill: "#6b6b6b" }, ["n/a"]));
          } else {
            if (r.ci_low !== null) g.appendChild(s("line", { x1: axis.scale(r.ci_low), x2: axis.scale(r.ci_high), y1: y, y2: y, stroke: SOURCE_COLOR[src], "stroke-width": 2 }));
            g.appendChild(marker(axis.scale(r.tau), y, src, excludesZero(r.ci_low, r.ci_high)));
          }
          tip(g, src + " \u00b7 " + factor + ": tau " + fmt(r.tau, 3) + " " + ci(r.ci_low, r.ci_high, 3) + ", n = " + (r.n_concordant + r.n_discordant));
          svg.appendChild(g);
        });
      });
      host.appendChild(figure("forest-figure", "Task: " + task,
        "Dot: tau; bar: " + LEVEL + "% interval. Circle: humans; square: model as judge (evaluation); triangle: model as writer (generation).", svg));
    });
  }

  // ---- 3. alignment matrix between sources ----------------------------------------------------------
  var METRICS = {
    spearman_rho: { label: "Spearman rho", lo: -1, hi: 1, kind: "correlation" },
    kendall_tau_b: { label: "Kendall tau-b", lo: -1, hi: 1, kind: "correlation" },
    sign_agreement: { label: "sign agreement", lo: 0, hi: 1, kind: "share" },
    top_k_overlap: { label: "top-3 overlap", lo: 0, hi: 1, kind: "share" },
    mean_abs_diff: { label: "mean |tau diff|", lo: 0, hi: 2, kind: "distance" }
  };
  function metricFill(metric, v) {
    if (v === null || v === undefined) return "#ffffff";
    var m = METRICS[metric];
    if (m.kind === "correlation") return diverging(v, 1);
    if (m.kind === "share") return sequential(v);
    return sequential(1 - Math.min(1, v));  // distance: small = close = deep
  }
  function renderAlignment() {
    var host = clear(byId("alignment-plots"));
    var metric = state.metric;
    visibleTasks().forEach(function (task) {
      var rows = DATA.alignment.filter(function (a) { return a.task === task && a.metric === metric && visible(a.source_x) && visible(a.source_y); });
      var sources = unique(rows.map(function (a) { return a.source_x; }).concat(rows.map(function (a) { return a.source_y; }))).sort(sourceOrder);
      if (sources.length < 2) {
        host.appendChild(h("p", { "class": "empty" }, ["Task " + task + ": alignment needs two visible sources sharing at least two factors."]));
        return;
      }
      var find = {};
      rows.forEach(function (a) { find[a.source_x + "\u0001" + a.source_y] = a; find[a.source_y + "\u0001" + a.source_x] = a; });
      var labelW = Math.max.apply(null, sources.map(function (src) { return textWidth(clip(src.slice(0, src.lastIndexOf("/")), 22), 11); }));
      var cw = Math.max(96, Math.min(170, labelW + 14)), ch = 40, left = 12 + Math.max.apply(null, sources.map(function (x) { return textWidth(clip(simSource(x), 46), 12); })), top = 40;
      var width = left + cw * sources.length + 10, height = top + ch * sources.length + 6;
      var svg = svgRoot(width, height, "alignment", "Alignment between sources, task " + task);
      svg.setAttribute("data-task", task);
      sources.forEach(function (src, j) {
        svg.appendChild(tip(s("text", { x: left + cw * j + cw / 2, y: 16, "font-size": 11, "text-anchor": "middle" }, [clip(src.slice(0, src.lastIndexOf("/")), 22)]), src));
        svg.appendChild(s("text", simAttrs({ x: left + cw * j + cw / 2, y: 30, "font-size": 10, "text-anchor": "middle", "font-style": "italic", fill: "#5a5a5a" },
          SIM_SOURCES[src]), [src.split("/").pop() + (SIM_SOURCES[src] ? SIM_MARK : "")]));
        svg.appendChild(tip(s("text", simAttrs({ x: left - 8, y: top + ch * j + ch / 2 + 4, "font-size": 12, "text-anchor": "end" }, SIM_SOURCES[src]),
          [clip(simSource(src), 46)]), simSource(src)));
      });
      sources.forEach(function (sy, i) {
        sources.forEach(function (sx, j) {
          var x = left + cw * j, y = top + ch * i;
          if (i === j) {
            svg.appendChild(s("rect", { x: x + 1, y: y + 1, width: cw - 2, height: ch - 2, fill: "#f4f4f6" }));
            svg.appendChild(s("text", { x: x + cw / 2, y: y + ch / 2 + 4, "font-size": 12, "text-anchor": "middle", fill: "#9a9a9a" }, ["\u2014"]));
            return;
          }
          var a = find[sx + "\u0001" + sy];
          if (!a) { svg.appendChild(s("rect", { x: x + 1, y: y + 1, width: cw - 2, height: ch - 2, fill: "#fff", stroke: "#eee" })); return; }
          var fill = metricFill(metric, a.value), ink = inkOn(fill);
          var g = s("g", { "class": "al-cell" });
          g.appendChild(s("rect", { x: x + 1, y: y + 1, width: cw - 2, height: ch - 2, rx: 3, fill: fill, stroke: "#e0e0e0" }));
          g.appendChild(s("text", { x: x + cw / 2, y: y + 17, "font-size": 13, "text-anchor": "middle", fill: ink }, [fmt(a.value)]));
          g.appendChild(s("text", { x: x + cw / 2, y: y + 32, "font-size": 10, "text-anchor": "middle", fill: ink }, [ci(a.ci_low, a.ci_high)]));
          tip(g, a.source_x + " vs " + a.source_y + "\n" + METRICS[metric].label + " " + fmt(a.value, 3) + " " + LEVEL + "% CI " + (ci(a.ci_low, a.ci_high, 3) || "n/a") + "\nover " + a.n_factors + " factors (" + a.factors + ")" +
            (a.pairs === "intersection" ? "\non the " + a.n_pairs + " judged pairs both decided" : "\neach on its own pairs"));
          svg.appendChild(g);
        });
      });
      host.appendChild(figure("alignment-figure", "Task: " + task + " \u00b7 " + METRICS[metric].label,
        "How similarly two sources rank the factors (" + LEVEL + "% interval below each value). With few factors these intervals are wide.", svg));
    });
  }

  // ---- 3b. generation-evaluation gap per model -------------------------------------------------------
  function renderGaps() {
    var host = clear(byId("gap-plots"));
    var metric = state.metric, m = METRICS[metric];
    var rows = (DATA.gaps.alignment || []).filter(function (g) {
      return g.metric === metric && (!state.task || g.task === state.task) && visible(g.human) &&
        (visible(g.labeler + "/evaluation") || visible(g.labeler + "/generation"));
    });
    if (!rows.length) {
      host.appendChild(h("p", { "class": "empty" }, [(DATA.gaps.alignment || []).length
        ? "Every model with both settings is filtered out."
        : "No model appears both as judge (evaluation) and as writer (generation) next to a human source, so there is no gap to show."]));
      return;
    }
    function gapLabel(g) { return clip(simModel(g.labeler), 42) + " (task " + g.task + ")"; }
    var left = Math.max(250, 16 + Math.max.apply(null, rows.map(function (g) { return textWidth(gapLabel(g), 13); })));
    var plotW = 420, rowH = 22, top = 30, blockH = 2 * rowH + 26;
    var width = left + plotW + 200, height = top + blockH * rows.length + 4;
    var svg = svgRoot(width, height, "gap", "Generation-evaluation gap per model");
    var axis = hAxis(left, plotW, m.lo, m.hi, top - 6, height - 4, ticksFor(m.lo, m.hi));
    svg.appendChild(axis.g);
    rows.forEach(function (g, i) {
      var y0 = top + blockH * i;
      svg.appendChild(s("text", simAttrs({ "class": "gap-model", "data-model": g.labeler, x: 6, y: y0 + 14, "font-size": 13, "font-weight": 600 },
        simModelName(g.labeler)), [gapLabel(g)]));
      [["evaluation", "as judge (evaluation)"], ["generation", "as writer (generation)"]].forEach(function (pair, k) {
        var y = y0 + 24 + rowH * k, src = g.labeler + "/" + pair[0], v = g[pair[0]], c = g[pair[0] + "_ci"] || [null, null];
        svg.appendChild(s("text", { x: 18, y: y + 4, "font-size": 12 }, [pair[1] + " vs " + clip(g.human, 14)]));
        if (v === null) return;
        if (c[0] !== null) svg.appendChild(s("line", { x1: axis.scale(c[0]), x2: axis.scale(c[1]), y1: y, y2: y, stroke: SOURCE_COLOR[src] || "#555", "stroke-width": 2 }));
        var mk = marker(axis.scale(v), y, SOURCE_COLOR[src] ? src : g.labeler + "/" + pair[0], true);
        svg.appendChild(tip(s("g", {}, [mk]), src + " vs " + g.human + ": " + m.label + " " + fmt(v, 3) + " " + ci(c[0], c[1], 3)));
      });
      var sig = excludesZero(g.gap_ci[0], g.gap_ci[1]);
      svg.appendChild(s("text", { x: left + plotW + 14, y: y0 + 40, "font-size": 12, "font-weight": sig ? 700 : 400 },
        ["gap " + fmt(g.gap) + " " + ci(g.gap_ci[0], g.gap_ci[1]) + (sig ? " *" : "")]));
    });
    host.appendChild(figure("gap-figure", "Alignment with humans: as judge vs as writer \u00b7 " + m.label,
      "gap = alignment as judge - alignment as writer (" + LEVEL + "% interval; * excludes 0)." +
      (m.kind === "distance" ? " For this metric lower means closer, so a negative gap means the judge is closer." : ""), svg));
    // The factors that open the gap most: largest |tau_generation - tau_evaluation|.
    var factorRows = (DATA.gaps.factors || []).filter(function (f) {
      return rows.some(function (g) { return g.task === f.task && g.labeler === f.labeler && g.human === f.human; });
    });
    var table = h("table", { "class": "data gap-factors" }, [h("tr", {}, ["task", "model", "factor", "tau human", "tau as judge", "tau as writer", "writer - judge [CI]"].map(function (c) { return h("th", {}, [c]); }))]);
    var groups = {};
    factorRows.forEach(function (f) { (groups[f.task + "\u0001" + f.labeler + "\u0001" + f.human] = groups[f.task + "\u0001" + f.labeler + "\u0001" + f.human] || []).push(f); });
    Object.keys(groups).sort().forEach(function (k) {
      groups[k].sort(function (a, b) { return Math.abs(b.generation_minus_evaluation) - Math.abs(a.generation_minus_evaluation); }).slice(0, 3).forEach(function (f) {
        table.appendChild(h("tr", simAttrs({}, simModelName(f.labeler) || SIM_FACTORS[f.factor]), [h("td", {}, [f.task]), h("td", {}, [simModel(f.labeler)]), h("td", {}, [simFactor(f.factor)]),
          h("td", { "class": "num" }, [fmt(f.tau_human)]), h("td", { "class": "num" }, [fmt(f.tau_evaluation)]), h("td", { "class": "num" }, [fmt(f.tau_generation)]),
          h("td", { "class": "num" + (excludesZero(f.ci[0], f.ci[1]) ? " sig-yes" : "") }, [fmt(f.generation_minus_evaluation) + " " + ci(f.ci[0], f.ci[1])])]));
      });
    });
    host.appendChild(h("p", { "class": "note" }, ["Factors that differ most between the model as writer and as judge (top 3 per model):"]));
    host.appendChild(table);
  }

  // ---- 4. adjusted vs plain ---------------------------------------------------------------------------
  function renderAdjusted() {
    var host = byId("adjusted-plots");
    if (!host) return;
    clear(host);
    var adjusted = DATA.adjusted || [];
    var seriesNames = unique(adjusted.map(function (a) { return a.series; })).sort();
    visibleTasks().forEach(function (task) {
      var plain = influenceOf(task);
      unique(plain.map(sourceName)).sort(sourceOrder).forEach(function (src) {
        var adj = adjusted.filter(function (a) { return a.task === task && sourceName(a) === src; });
        if (!adj.length) return;
        var factors = sortFactors(plain.filter(function (r) { return sourceName(r) === src; }));
        var panels = [{ name: "plain tau", rows: plain.filter(function (r) { return sourceName(r) === src; }).map(function (r) {
          return { factor: r.factor, value: r.tau, ci_low: r.ci_low, ci_high: r.ci_high }; }), lo: -1, hi: 1 }];
        seriesNames.forEach(function (name) {
          var rs = adj.filter(function (a) { return a.series === name; });
          if (!rs.length) return;
          var ext = Math.max.apply(null, [0.1].concat(rs.map(function (a) { return Math.max(Math.abs(a.value || 0), Math.abs(a.ci_low || 0), Math.abs(a.ci_high || 0)); })));
          ext = Math.ceil(ext * 4) / 4;
          panels.push({ name: name, rows: rs, lo: -ext, hi: ext });
        });
        // Labels of disagreeing rows are bold: measure them so (canvas font "700 13px ...").
        var left = 16 + Math.max.apply(null, factors.map(function (f) { return textWidth(simFactor(f), 13, true); })), panelW = 200, gapW = 56, top = 34, rowH = 24;
        var width = left + panels.length * (panelW + gapW) + 40, height = top + rowH * factors.length + 8;
        var reasons = {};
        adj.forEach(function (a) { if (a.disagreement) reasons[a.factor] = a.disagreement; });
        var svg = svgRoot(width, height, "adjusted", "Adjusted vs plain effects, " + src + ", task " + task);
        var lookup = panels.map(function (p) { var o = {}; p.rows.forEach(function (r) { o[r.factor] = r; }); return o; });
        factors.forEach(function (factor, i) {
          var y = top + rowH * i, base = lookup[0][factor];
          var disagree = !!reasons[factor];
          if (disagree) svg.appendChild(tip(s("rect", { "class": "disagree", x: 0, y: y, width: width, height: rowH, fill: "#fdeede" }), reasons[factor]));
          svg.appendChild(s("text", simAttrs({ x: left - 8, y: y + rowH / 2 + 4, "font-size": 13, "text-anchor": "end", "font-weight": disagree ? 700 : 400 },
            SIM_FACTORS[factor]), [simFactor(factor)]));
          if (disagree) svg.appendChild(s("text", { x: width - 46, y: y + rowH / 2 + 4, "font-size": 12, fill: "#b35806", "font-weight": 700 }, ["\u2260"]));
        });
        panels.forEach(function (p, k) {
          var x0 = left + k * (panelW + gapW);
          svg.appendChild(tip(s("text", { x: x0 + panelW / 2, y: 12, "font-size": 12, "text-anchor": "middle", "font-weight": 600 }, [clip(p.name, 30)]), p.name));
          var axis = hAxis(x0, panelW, p.lo, p.hi, top - 4, height - 4, [p.lo, 0, p.hi]);
          svg.appendChild(axis.g);
          factors.forEach(function (factor, i) {
            var r = lookup[k][factor], y = top + rowH * i + rowH / 2;
            if (!r || r.value === null || r.value === undefined) return;
            if (r.ci_low !== null && r.ci_low !== undefined) svg.appendChild(s("line", { x1: axis.scale(r.ci_low), x2: axis.scale(r.ci_high), y1: y, y2: y, stroke: SOURCE_COLOR[src], "stroke-width": 2 }));
            svg.appendChild(tip(s("g", {}, [marker(axis.scale(r.value), y, src, excludesZero(r.ci_low, r.ci_high))]), p.name + " \u00b7 " + factor + ": " + fmt(r.value, 3) + " " + ci(r.ci_low, r.ci_high, 3)));
          });
        });
        host.appendChild(figure("adjusted-figure", simSource(src) + " \u00b7 task " + task,
          "Left: plain tau; right: effects with other factors held fixed, each on its own scale. Shaded rows (\u2260): the reduce found the adjusted and the plain effect disagree.", svg));
        var flagged = factors.filter(function (f) { return reasons[f]; });
        if (flagged.length) host.appendChild(h("ul", { "class": "note adjusted-reasons" }, flagged.map(function (f) { return h("li", {}, [f + ": " + reasons[f]]); })));
      });
    });
  }

  // ---- 5. drift over audits ---------------------------------------------------------------------------
  function renderDrift() {
    var host = byId("drift-plots");
    if (!host || !DATA.drift) return;
    clear(host);
    var audits = DATA.drift.audits;
    visibleTasks().forEach(function (task) {
      var points = DATA.drift.points.filter(function (p) { return p.task === task && visible(sourceName(p)); });
      unique(points.map(sourceName)).sort(sourceOrder).forEach(function (src) {
        var mine = points.filter(function (p) { return sourceName(p) === src; });
        var factors = unique(mine.map(function (p) { return p.factor; })).sort();
        var left = 44, step = Math.max(90, Math.min(180, 560 / Math.max(1, audits.length - 1))), top = 16, plotH = 220;
        var plotW = step * Math.max(1, audits.length - 1);
        var labelW = 16 + Math.max.apply(null, factors.map(function (f) { return textWidth(f, 12); }));
        var width = left + plotW + 40 + labelW, height = top + plotH + 40;
        var svg = svgRoot(width, height, "drift", "tau over audits, " + src + ", task " + task);
        var y = function (v) { return top + (1 - (v + 1) / 2) * plotH; };
        var x = function (i) { return left + 20 + (audits.length === 1 ? plotW / 2 : i * step); };
        [-1, -0.5, 0, 0.5, 1].forEach(function (t) {
          svg.appendChild(s("line", { x1: left, x2: left + plotW + 40, y1: y(t), y2: y(t), "class": t === 0 ? "zero" : "grid" }));
          svg.appendChild(s("text", { x: left - 6, y: y(t) + 4, "font-size": 11, "text-anchor": "end", fill: "#5a5a5a" }, [t === 0 ? "0" : fmt(t, 1)]));
        });
        audits.forEach(function (a, i) {
          svg.appendChild(tip(s("text", { x: x(i), y: top + plotH + 18, "font-size": 11, "text-anchor": "middle" }, [clip(a.label, 22)]), a.path));
        });
        var ends = [];
        factors.forEach(function (factor, fi) {
          var dx = (fi - (factors.length - 1) / 2) * 3;  // nudge each factor's whiskers apart
          var style = FACTOR_STYLE[factor] || { color: "#555", dash: "" };
          var series = mine.filter(function (p) { return p.factor === factor && p.tau !== null; }).sort(function (a, b) { return a.audit - b.audit; });
          if (!series.length) return;
          var g = s("g", { "class": "drift-line", "data-factor": factor });
          g.appendChild(s("polyline", { points: series.map(function (p) { return (x(p.audit) + dx) + "," + y(p.tau); }).join(" "), fill: "none",
            stroke: style.color, "stroke-width": 2, "stroke-dasharray": style.dash }));
          series.forEach(function (p) {
            if (p.ci_low !== null && p.ci_low !== undefined) g.appendChild(s("line", { x1: x(p.audit) + dx, x2: x(p.audit) + dx, y1: y(p.ci_low), y2: y(p.ci_high), stroke: style.color, "stroke-width": 1.2, opacity: 0.7 }));
            g.appendChild(tip(s("circle", { cx: x(p.audit) + dx, cy: y(p.tau), r: 3.5, fill: style.color }), factor + " @ " + audits[p.audit].label + ": tau " + fmt(p.tau, 3) + " " + ci(p.ci_low, p.ci_high, 3)));
          });
          svg.appendChild(g);
          ends.push({ factor: factor, y: y(series[series.length - 1].tau), color: style.color });
        });
        // Direct labels at the line ends, nudged apart so they do not overlap.
        ends.sort(function (a, b) { return a.y - b.y; });
        for (var k = 1; k < ends.length; k++) if (ends[k].y - ends[k - 1].y < 13) ends[k].y = ends[k - 1].y + 13;
        ends.forEach(function (e) { svg.appendChild(s("text", { x: left + plotW + 46, y: e.y + 4, "font-size": 12, fill: e.color }, [e.factor])); });
        host.appendChild(figure("drift-figure", src + " \u00b7 task " + task, "tau per factor in each audit, oldest first; vertical bars: " + LEVEL + "% intervals.", svg));
      });
    });
    var changes = (DATA.drift.changes || []).filter(function (c) { return (!state.task || c.task === state.task) && visible(sourceName(c)); });
    if (changes.length) {
      changes.sort(function (a, b) { return Math.abs(b.delta) - Math.abs(a.delta); });
      var table = h("table", { "class": "data drift-changes" }, [h("tr", {}, ["task", "source", "factor", "previous", "now", "change [CI]", "significant"].map(function (c) { return h("th", {}, [c]); }))]);
      changes.forEach(function (c) {
        table.appendChild(h("tr", {}, [h("td", {}, [c.task]), h("td", {}, [sourceName(c)]), h("td", {}, [c.factor]),
          h("td", { "class": "num" }, [fmt(c.before)]), h("td", { "class": "num" }, [fmt(c.after)]),
          h("td", { "class": "num" }, [fmt(c.delta) + " " + ci(c.ci_low, c.ci_high)]),
          h("td", { "class": c.significant ? "sig-yes" : "" }, [c.significant === null ? "no replicates" : c.significant ? "yes" : "no"])]));
      });
      host.appendChild(h("h3", {}, ["Changes since the previous audit (largest first)"]));
      host.appendChild(table);
    }
    var metric = state.metric;
    var aligned = (DATA.drift.alignment_changes || []).filter(function (a) {
      return a.metric === metric && (!state.task || a.task === state.task) && visible(a.source_x) && visible(a.source_y) && a.change !== null;
    });
    if (aligned.length) {
      var t2 = h("table", { "class": "data drift-alignment" }, [h("tr", {}, ["task", "sources", "previous", "now", "change [CI]", "agreement"].map(function (c) { return h("th", {}, [c]); }))]);
      aligned.forEach(function (a) {
        t2.appendChild(h("tr", {}, [h("td", {}, [a.task]), h("td", {}, [a.source_x + " vs " + a.source_y]),
          h("td", { "class": "num" }, [fmt(a.value_previous)]), h("td", { "class": "num" }, [fmt(a.value_current)]),
          h("td", { "class": "num" + (a.significant ? " sig-yes" : "") }, [fmt(a.change) + " " + ci(a.ci_low, a.ci_high)]),
          h("td", {}, [a.drop === null ? "" : a.significant ? (a.drop > 0 ? "dropped" : "rose") : "no clear change"])]));
      });
      host.appendChild(h("h3", {}, ["Alignment since the previous audit \u00b7 " + METRICS[metric].label]));
      host.appendChild(t2);
    }
  }

  // ---- 6. deciding pairs --------------------------------------------------------------------------------
  var EXAMPLES = {};
  (DATA.examples || []).forEach(function (e) { (EXAMPLES[cellKey(e)] = EXAMPLES[cellKey(e)] || []).push(e); });
  function textBlock(part, cls) {
    var nodes = [h("pre", { "class": "text " + cls }, [part.text])];
    if (part.truncated) nodes.push(h("div", { "class": "truncated" }, ["(first " + part.text.length + " of " + part.chars + " characters)"]));
    return nodes;
  }
  function renderCellPairs(cell) {
    var r = DATA.influence.filter(function (x) { return cellKey(x) === cellKey(cell); })[0] || cell;
    var pairs = EXAMPLES[cellKey(cell)] || [];
    var src = sourceName(cell);
    var box = h("div", { "class": "pairs-cell", "data-task": cell.task, "data-source": src, "data-factor": cell.factor });
    box.appendChild(h("h3", {}, [simSource(src) + " \u00b7 " + simFactor(cell.factor) + " \u00b7 task " + cell.task]));
    if (r.tau !== null && r.tau !== undefined) {
      var more = r.tau > 0, share = Math.round(100 * (more ? r.p_preferred_more : 1 - r.p_preferred_more));
      box.appendChild(h("p", {}, ["tau " + fmt(r.tau) + " " + ci(r.ci_low, r.ci_high) + ": the preferred response has " + (more ? "more " : "less ") +
        cell.factor + " in " + share + "% of the pairs where it differs" + (excludesZero(r.ci_low, r.ci_high) ? "." : " (the interval includes 0: this may be chance).") +
        " Below, the pairs where " + cell.factor + " differs most in that direction."]));
    }
    if (!pairs.length) {
      box.appendChild(h("p", { "class": "empty" }, ["No deciding pairs for this cell" + (DATA.examples_note ? ": " + DATA.examples_note : " (tau is undefined or zero, or no pair went its way).")]));
    }
    pairs.forEach(function (p) {
      box.appendChild(h("article", { "class": "pair", "data-pair-id": p.pair_id }, [
        h("div", { "class": "meta" }, ["pair " + p.pair_id + " \u00b7 " + p.dataset]),
        h("details", { open: "" }, [h("summary", {}, ["Prompt"])].concat(textBlock(p.prompt, "prompt"))),
        h("div", { "class": "cols" }, [
          h("div", { "class": "preferred" }, [h("h4", {}, ["Preferred \u00b7 " + cell.factor + " = " + num(p.preferred.value)])].concat(textBlock(p.preferred, "response"))),
          h("div", { "class": "other" }, [h("h4", {}, ["Not preferred \u00b7 " + cell.factor + " = " + num(p.other.value)])].concat(textBlock(p.other, "response")))
        ])
      ]));
    });
    return box;
  }
  function num(v) { return v === null || v === undefined ? "n/a" : (Math.round(v * 1000) / 1000).toString(); }
  function renderExamples() {
    var host = clear(byId("examples-list"));
    var cells = (DATA.top_cells || []).filter(function (c) { return visible(sourceName(c)) && (!state.task || c.task === state.task); });
    if (!cells.length) host.appendChild(h("p", { "class": "empty" }, ["No finding with an interval that excludes 0" + (state.task || Object.keys(state.hidden).length ? " among the visible sources." : ".")]));
    cells.forEach(function (c) { host.appendChild(renderCellPairs(c)); });
  }
  // The pairs of the clicked cell open right under the heatmaps.
  function renderSelected() {
    var host = clear(byId("cell-pairs"));
    if (!state.selected) return;
    var close = h("button", { "class": "link no-print", type: "button", id: "close-cell-pairs" }, ["close"]);
    close.addEventListener("click", function () { select(null, false); });
    host.appendChild(h("p", { "class": "note" }, ["Deciding pairs of the cell you clicked (", close, ")."]));
    host.appendChild(renderCellPairs(state.selected));
  }
  function select(cell, scroll) {
    state.selected = cell ? { task: cell.task, labeler: cell.labeler, setting: cell.setting, factor: cell.factor } : null;
    renderSelected();
    renderHeatmaps();
    if (scroll && cell) byId("cell-pairs").scrollIntoView({ block: "nearest" });
  }

  // ---- controls -------------------------------------------------------------------------------------------
  function renderAll() { renderHeatmaps(); renderSelected(); renderExamples(); renderForests(); renderAlignment(); renderGaps(); renderAdjusted(); renderDrift(); }
  function buildControls() {
    var nav = clear(byId("controls"));
    var taskSelect = h("select", { id: "task-filter" }, [h("option", { value: "" }, ["all tasks"])].concat(TASKS.map(function (t) { return h("option", { value: t }, [t]); })));
    taskSelect.addEventListener("change", function () { state.task = taskSelect.value; renderAll(); });
    nav.appendChild(h("div", { "class": "group" }, [h("label", { "for": "task-filter" }, ["Task "]), taskSelect]));
    var boxes = h("div", { "class": "group", id: "source-filter" }, ["Sources:"]);
    SOURCES.forEach(function (src) {
      var box = h("input", { type: "checkbox", checked: "", "data-source": src });
      box.addEventListener("change", function () { if (box.checked) delete state.hidden[src]; else state.hidden[src] = true; renderAll(); });
      boxes.appendChild(h("label", simAttrs({}, SIM_SOURCES[src]), [box, " " + simSource(src)]));
    });
    nav.appendChild(boxes);
    var sortSelect = h("select", { id: "factor-sort" }, [["name", "by name"], ["strongest", "strongest |tau| first"], ["spread", "most disagreement first"]].map(function (o) {
      return h("option", { value: o[0] }, [o[1]]); }));
    sortSelect.addEventListener("change", function () { state.sort = sortSelect.value; renderAll(); });
    nav.appendChild(h("div", { "class": "group" }, [h("label", { "for": "factor-sort" }, ["Sort factors "]), sortSelect]));
    var metricSelect = h("select", { id: "alignment-metric" }, Object.keys(METRICS).map(function (k) { return h("option", { value: k }, [METRICS[k].label]); }));
    metricSelect.addEventListener("change", function () { state.metric = metricSelect.value; renderAlignment(); renderGaps(); renderDrift(); });
    nav.appendChild(h("div", { "class": "group" }, [h("label", { "for": "alignment-metric" }, ["Alignment metric "]), metricSelect]));
  }

  buildControls();
  renderAll();
  document.documentElement.setAttribute("data-rendered", "true");
})();
