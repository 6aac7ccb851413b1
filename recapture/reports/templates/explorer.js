/* recapture linkage explorer: draws the embedded JSON; no network, no library. */
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("explorer-data").textContent);
  var NS = "http://www.w3.org/2000/svg";
  var COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"];
  var P = D.pairs, M = D.model, comps = M.comparisons;

  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) { e.setAttribute(k, attrs[k]); }
    if (text !== undefined && text !== null) { e.textContent = text; }
    return e;
  }
  function sv(tag, attrs, text) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs || {}) { e.setAttribute(k, attrs[k]); }
    if (text !== undefined && text !== null) { e.textContent = text; }
    return e;
  }
  function fmtInt(x) { return x === null || x === undefined ? "–" : Math.round(x).toLocaleString("en-US"); }
  function fmt(x, d) { return x === null || x === undefined || !isFinite(x) ? "–" : Number(x).toFixed(d); }
  function fmtP(x) {
    if (x === null || x === undefined) { return "–"; }
    if (x !== 0 && Math.abs(x) < 1e-3) { return x.toExponential(2); }
    return x.toFixed(4);
  }
  function log2odds(l) { l = Math.min(Math.max(l, 1e-300), 1 - 1e-16); return Math.log2(l / (1 - l)); }
  function levelName(k, g) {
    if (g < 0) { return "–"; }
    var lv = comps[k].levels[g];
    return lv ? String(lv.level) : String(g);
  }

  /* ------------------------------------------------------------- a small line chart */
  function niceTicks(lo, hi, n) {
    if (!(hi > lo)) { hi = lo + 1; }
    var step = Math.pow(10, Math.floor(Math.log10((hi - lo) / n)));
    var err = (hi - lo) / n / step;
    step *= err >= 7.5 ? 10 : err >= 3.5 ? 5 : err >= 1.5 ? 2 : 1;
    var out = [];
    for (var t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) { out.push(+t.toPrecision(12)); }
    return out;
  }
  function tickLabel(t, log) {
    if (log) { return "1e" + t; }
    var a = Math.abs(t);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) { return t.toExponential(0); }
    return String(+t.toPrecision(6));
  }
  /* opts: series [{name, x[], y[], colour, dash}], xlabel, ylabel, logy, vlines [{x, label}],
     width, height, ymin, ymax */
  function lineChart(fig, opts) {
    fig.innerHTML = "";
    /* drawn at the figure's own width, so text keeps its size on any screen */
    var W = Math.max(fig.clientWidth || 640, 320), H = opts.height || 260, ml = 58, mr = 12, mt = 12, mb = 40;
    var legendH = opts.series.length > 1 ? 16 * Math.ceil(opts.series.length / 3) : 0;
    var svg = sv("svg", { viewBox: "0 0 " + W + " " + (H + legendH), role: "img", "aria-label": opts.name || "chart" });
    var xs = [], ys = [];
    opts.series.forEach(function (s) {
      s.x.forEach(function (v, i) {
        var y = s.y[i];
        if (y === null || y === undefined || !isFinite(y) || (opts.logy && y <= 0)) { return; }
        xs.push(v); ys.push(opts.logy ? Math.log10(y) : y);
      });
    });
    if (!xs.length) { fig.appendChild(el("p", { "class": "absent" }, "Not available: nothing to draw.")); return; }
    var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs);
    var y0 = opts.ymin !== undefined ? opts.ymin : Math.min.apply(null, ys);
    var y1 = opts.ymax !== undefined ? opts.ymax : Math.max.apply(null, ys);
    if (x1 === x0) { x1 = x0 + 1; }
    if (y1 === y0) { y1 = y0 + 1; y0 = y0 - 1; }
    var pad = (y1 - y0) * 0.05; if (opts.ymin === undefined) { y0 -= pad; } if (opts.ymax === undefined) { y1 += pad; }
    function X(v) { return ml + (v - x0) / (x1 - x0) * (W - ml - mr); }
    function Y(v) { return mt + (1 - (v - y0) / (y1 - y0)) * (H - mt - mb); }
    var g = sv("g");
    niceTicks(y0, y1, 5).forEach(function (t) {
      g.appendChild(sv("line", { x1: ml, x2: W - mr, y1: Y(t), y2: Y(t), stroke: "#d6dbe1", "stroke-width": 0.6 }));
      g.appendChild(sv("text", { x: ml - 5, y: Y(t) + 4, "text-anchor": "end" }, tickLabel(t, opts.logy)));
    });
    niceTicks(x0, x1, 7).forEach(function (t) {
      g.appendChild(sv("line", { x1: X(t), x2: X(t), y1: H - mb, y2: H - mb + 4, stroke: "#1b1f24" }));
      g.appendChild(sv("text", { x: X(t), y: H - mb + 16, "text-anchor": "middle" }, tickLabel(t, false)));
    });
    g.appendChild(sv("line", { x1: ml, x2: W - mr, y1: H - mb, y2: H - mb, stroke: "#1b1f24" }));
    g.appendChild(sv("line", { x1: ml, x2: ml, y1: mt, y2: H - mb, stroke: "#1b1f24" }));
    g.appendChild(sv("text", { x: (ml + W - mr) / 2, y: H - 6, "text-anchor": "middle" }, opts.xlabel || ""));
    g.appendChild(sv("text", { x: 12, y: (mt + H - mb) / 2, "text-anchor": "middle",
      transform: "rotate(-90 12 " + (mt + H - mb) / 2 + ")" }, (opts.ylabel || "") + (opts.logy ? " (log)" : "")));
    (opts.vlines || []).forEach(function (v) {
      if (v.x < x0 || v.x > x1) { return; }
      g.appendChild(sv("line", { x1: X(v.x), x2: X(v.x), y1: mt, y2: H - mb, stroke: v.colour || "#1b1f24",
        "stroke-dasharray": "4 3", "stroke-width": 1.2, "class": v.cls || "" }));
      if (v.label) {
        var right = X(v.x) > (ml + W - mr) / 2;
        g.appendChild(sv("text", { x: X(v.x) + (right ? -4 : 4), y: mt + 10, "text-anchor": right ? "end" : "start" }, v.label));
      }
    });
    opts.series.forEach(function (s, k) {
      var d = "", pen = false;
      s.x.forEach(function (v, i) {
        var y = s.y[i];
        if (y === null || y === undefined || !isFinite(y) || (opts.logy && y <= 0)) { pen = false; return; }
        var yy = opts.logy ? Math.log10(y) : y;
        d += (pen ? "L" : "M") + X(v).toFixed(1) + " " + Y(yy).toFixed(1);
        pen = true;
      });
      var colour = s.colour || COLOURS[k % COLOURS.length];
      g.appendChild(sv("path", { d: d, fill: "none", stroke: colour, "stroke-width": 1.6,
        "stroke-dasharray": s.dash || "" }));
      if (opts.series.length > 1) {
        var lx = ml + (k % 3) * ((W - ml - mr) / 3), ly = H + 4 + 16 * Math.floor(k / 3);
        g.appendChild(sv("line", { x1: lx, x2: lx + 18, y1: ly + 6, y2: ly + 6, stroke: colour, "stroke-width": 2,
          "stroke-dasharray": s.dash || "" }));
        g.appendChild(sv("text", { x: lx + 22, y: ly + 10 }, s.name));
      }
    });
    svg.appendChild(g);
    fig.appendChild(svg);
  }

  /* ------------------------------------------------------------- header counts */
  var C = D.counts;
  $("explorer-counts").textContent = fmtInt(C.records) + " records, " + fmtInt(C.pairs) +
    " candidate pairs, " + fmtInt(C.patterns) + " comparison patterns; threshold p ≥ " +
    D.threshold + " (" + fmt(D.threshold_weight, 2) + " bits). Embedded: " + fmtInt(C.embedded_pairs) +
    " pairs (" + fmtInt(C.band_pairs) + " lie within ±" + D.band_bits + " bits of the threshold).";
  $("band-bits").textContent = D.band_bits;

  /* ------------------------------------------------------------- threshold slider */
  var G = D.grid.rows, slider = $("thr");
  slider.max = String(G.length - 1);
  var runIdx = 0;
  G.forEach(function (r, i) { if (Math.abs(r.threshold - D.grid.run_threshold) < 1e-12) { runIdx = i; } });
  function showThreshold(i) {
    var r = G[i];
    slider.value = String(i);
    $("thr-p").textContent = String(r.threshold);
    $("thr-w").textContent = fmt(r.weight, 2);
    $("thr-links").textContent = fmtInt(r.links);
    $("thr-persons").textContent = fmtInt(r.persons);
    $("thr-precision").textContent = fmt(r.expected_precision, 4);
    $("thr-recall").textContent = fmt(r.expected_recall, 4);
    $("thr-chapman").textContent = r.chapman === undefined ? "–" : fmtInt(r.chapman);
    $("thr-chapman-n").textContent = r.chapman_counts ? D.grid.sources[0] + " " + fmtInt(r.chapman_counts[0]) +
      ", " + D.grid.sources[1] + " " + fmtInt(r.chapman_counts[1]) + ", both " + fmtInt(r.chapman_counts[2]) : "";
    $("thr-chao").textContent = fmtInt(r.chao);
    $("thr-chao-n").textContent = r.chao_source + ": n " + fmtInt(r.chao_counts[0]) + ", f1 " +
      fmtInt(r.chao_counts[1]) + ", f2 " + fmtInt(r.chao_counts[2]);
    $("thr-run").textContent = i === runIdx ? "the run's threshold" : "run: p ≥ " + D.grid.run_threshold;
    drawThresholdChart(r.threshold);
  }
  function drawThresholdChart(current) {
    var x = G.map(function (r) { return r.threshold; });
    lineChart($("thr-chart"), {
      name: "threshold-chart",
      series: [
        { name: "expected precision", x: x, y: G.map(function (r) { return r.expected_precision; }) },
        { name: "expected recall", x: x, y: G.map(function (r) { return r.expected_recall; }) },
        { name: "expected F1", x: x, y: G.map(function (r) { return r.expected_f1; }), dash: "2 3" }
      ],
      xlabel: "match-probability threshold", ylabel: "share", ymin: 0, ymax: 1.02, height: 220,
      vlines: [{ x: current, label: "p ≥ " + current, cls: "current" },
        { x: D.grid.run_threshold, colour: "#8a939e" }]
    });
  }
  slider.addEventListener("input", function () { showThreshold(parseInt(slider.value, 10)); });
  showThreshold(runIdx);

  /* ------------------------------------------------------------- waterfall */
  var aliasSet = {};
  (M.alias_comparisons || []).forEach(function (n) { aliasSet[n] = true; });
  function waterfall(k) {
    var key = [D.sources[P.src_l[k]], D.sources[P.src_r[k]]].sort().join("–");
    var lam = M.lambda_by_source_pair[key];
    var prior = lam !== undefined ? log2odds(lam) : (M.prior_match_weight !== null ? M.prior_match_weight : log2odds(M.lambda));
    var parts = [{ name: "prior (" + key + ")", level: "", bits: prior }];
    var total = 0, kept = 0;
    comps.forEach(function (c, j) {
      var g = P.gammas[k][j];
      var b = g >= 0 ? c.bits[g] : 0;
      total += b;
      if (aliasSet[c.name]) { kept += b; }
      var lv = g >= 0 ? c.levels[g] : null;
      parts.push({ name: c.name, level: levelName(j, g), bits: b, m: lv ? lv.m : null, u: lv ? lv.u : null });
    });
    var w = P.weight[k], rest = w - prior, pi = M.alias_share || 0, tf = rest - total;
    if (pi > 0) {
      var own = Math.pow(2, rest) - pi * Math.pow(2, kept);
      if (own > 0) { tf = Math.log2(own / (1 - pi)) - total; }
    }
    /* TF bits apply to exact and key agreement of TF fields only: name the bar after them */
    var agree = [];
    comps.forEach(function (c, j) {
      var g = P.gammas[k][j];
      if (c.tf && g >= 0 && (c.levels[g].level === "exact" || c.levels[g].level === "key")) { agree.push(c.name); }
    });
    var tfFields = agree.length > 1 ? agree.join(" + ") + ", joint names" :
      agree.length === 1 ? agree[0] : "none (no name agrees exactly or on its key)";
    parts.push({ name: "term frequencies", level: tfFields, bits: tf });
    parts.push({ name: "alias mixture", level: pi > 0 ? "π = " + pi : "", bits: w - prior - total - tf });
    return parts;
  }
  function drawWaterfall(k) {
    var parts = waterfall(k), fig = $("wf-chart");
    fig.innerHTML = "";
    var rows = parts.length + 1, W = Math.max(fig.clientWidth || 640, 360), rh = 22, mr = 70, H = rows * rh + 34;
    /* room for the longest label (about 6.5 px a character at 11 px), at most half the width */
    var longest = parts.reduce(function (n, p) { return Math.max(n, p.name.length); }, 12);
    var ml = Math.min(Math.max(150, 6.5 * longest + 12), W / 2);
    var cum = 0, lo = 0, hi = 0;
    parts.forEach(function (p) { cum += p.bits; lo = Math.min(lo, cum, cum - p.bits); hi = Math.max(hi, cum, cum - p.bits); });
    var span = Math.max(hi - lo, 1);
    function X(v) { return ml + (v - lo) / span * (W - ml - mr); }
    var svg = sv("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "waterfall" });
    svg.appendChild(sv("line", { x1: X(0), x2: X(0), y1: 4, y2: rows * rh + 4, stroke: "#1b1f24", "stroke-width": 0.8 }));
    cum = 0;
    parts.forEach(function (p, i) {
      var a = cum, b = cum + p.bits; cum = b;
      var y = 6 + i * rh;
      svg.appendChild(sv("text", { x: ml - 6, y: y + 14, "text-anchor": "end" }, p.name));
      svg.appendChild(sv("rect", { x: Math.min(X(a), X(b)), y: y + 2, width: Math.max(Math.abs(X(b) - X(a)), 1),
        height: rh - 6, fill: p.bits >= 0 ? "#009E73" : "#D55E00", "class": "wf-bar", "data-bits": String(p.bits) }));
      svg.appendChild(sv("text", { x: Math.max(X(a), X(b)) + 4, y: y + 14 }, (p.bits >= 0 ? "+" : "") + p.bits.toFixed(2)));
    });
    var yT = 6 + parts.length * rh;
    svg.appendChild(sv("text", { x: ml - 6, y: yT + 14, "text-anchor": "end", "font-weight": "bold" }, "match weight"));
    svg.appendChild(sv("rect", { x: Math.min(X(0), X(cum)), y: yT + 2, width: Math.max(Math.abs(X(cum) - X(0)), 1),
      height: rh - 6, fill: "#0072B2" }));
    svg.appendChild(sv("text", { x: Math.max(X(0), X(cum)) + 4, y: yT + 14 }, cum.toFixed(2)));
    svg.appendChild(sv("line", { x1: X(D.threshold_weight), x2: X(D.threshold_weight), y1: 4, y2: rows * rh + 8,
      stroke: "#5b6470", "stroke-dasharray": "4 3" }));
    svg.appendChild(sv("text", { x: X(D.threshold_weight), y: H - 6, "text-anchor": "middle" }, "threshold " + D.threshold_weight.toFixed(1) + " bits"));
    fig.appendChild(svg);
    var sum = parts.reduce(function (s, p) { return s + p.bits; }, 0);
    $("wf-sum").textContent = sum.toFixed(6);
    $("wf-weight").textContent = P.weight[k].toFixed(6);
    $("wf-prob").textContent = fmtP(P.prob[k]);
    var title = "Pair " + P.l[k] + " – " + P.r[k] + " (" + D.sources[P.src_l[k]] + " / " + D.sources[P.src_r[k]] +
      "), persons " + P.person_l[k] + (P.person_l[k] === P.person_r[k] ? " (same cluster)" : " / " + P.person_r[k]) +
      (P.rule ? ", blocking rule " + P.rule[k] : "") + (P.swapped && P.swapped[k] ? ", names compared swapped" : "");
    $("wf-title").textContent = title;
    if (P.names) {
      $("wf-title").appendChild(el("br"));
      $("wf-title").appendChild(el("span", {}, P.names.l[k] + "  |  " + P.names.r[k]));
    }
    var tb = $("wf-table").querySelector("tbody");
    tb.innerHTML = "";
    parts.forEach(function (p) {
      var tr = el("tr");
      tr.appendChild(el("td", {}, p.name));
      tr.appendChild(el("td", {}, p.level));
      tr.appendChild(el("td", { "class": "n" }, p.m === undefined || p.m === null ? "" : fmtP(p.m)));
      tr.appendChild(el("td", { "class": "n" }, p.u === undefined || p.u === null ? "" : fmtP(p.u)));
      tr.appendChild(el("td", { "class": "n" }, p.bits.toFixed(3)));
      tb.appendChild(tr);
    });
    selected = k;
    Array.prototype.forEach.call(document.querySelectorAll("#pair-table tbody tr"), function (tr) {
      tr.classList.toggle("selected", parseInt(tr.dataset.k, 10) === k);
    });
  }
  var selected = -1;
  function fillPairs() {
    var mode = $("pair-filter").value, ks = [];
    for (var k = 0; k < P.l.length; k++) {
      var linked = P.linked ? P.linked[k] : P.prob[k] >= D.threshold;
      if ((mode === "band" && P.band[k]) || mode === "all" || (mode === "linked" && linked) || (mode === "unlinked" && !linked)) { ks.push(k); }
    }
    ks.sort(function (a, b) { return P.weight[b] - P.weight[a]; });
    var shown = ks.slice(0, 2000), tb = $("pair-table").querySelector("tbody");
    tb.innerHTML = "";
    shown.forEach(function (k) {
      var tr = el("tr", { "class": "pick", "data-k": String(k) });
      tr.appendChild(el("td", { "class": "n" }, String(P.l[k])));
      tr.appendChild(el("td", { "class": "n" }, String(P.r[k])));
      tr.appendChild(el("td", {}, D.sources[P.src_l[k]] + " / " + D.sources[P.src_r[k]]));
      tr.appendChild(el("td", { "class": "n" }, P.weight[k].toFixed(2)));
      tr.appendChild(el("td", { "class": "n" }, fmtP(P.prob[k])));
      tr.appendChild(el("td", {}, (P.linked ? P.linked[k] : P.prob[k] >= D.threshold) ? "yes" : "no"));
      tr.addEventListener("click", function () { drawWaterfall(k); });
      if (k === selected) { tr.classList.add("selected"); }
      tb.appendChild(tr);
    });
    $("pair-shown").textContent = ks.length > shown.length ? shown.length + " of " + ks.length + " shown" : ks.length + " pairs";
    return shown;
  }
  $("pair-filter").addEventListener("change", fillPairs);
  var first = fillPairs();
  if (!first.length) { $("pair-filter").value = "all"; first = fillPairs(); }
  if (first.length) { drawWaterfall(first[Math.floor(first.length / 2)]); }

  /* ------------------------------------------------------------- patterns */
  var head = $("pattern-table").querySelector("thead tr");
  comps.forEach(function (c) { head.appendChild(el("th", {}, c.name)); });
  ["pairs", "mean weight", "mean p", "links", "examples"].forEach(function (h, i) {
    head.appendChild(el("th", i < 4 ? { "class": "n" } : {}, h));
  });
  function fillPatterns() {
    var how = $("pattern-sort").value, rows = D.patterns.slice();
    if (how === "weight") { rows.sort(function (a, b) { return b.mean_weight - a.mean_weight; }); }
    if (how === "near") { rows.sort(function (a, b) { return Math.abs(a.mean_weight - D.threshold_weight) - Math.abs(b.mean_weight - D.threshold_weight); }); }
    var tb = $("pattern-table").querySelector("tbody");
    tb.innerHTML = "";
    rows.slice(0, 400).forEach(function (r) {
      var tr = el("tr");
      r.gammas.forEach(function (g, j) { tr.appendChild(el("td", {}, levelName(j, g))); });
      tr.appendChild(el("td", { "class": "n" }, fmtInt(r.count)));
      tr.appendChild(el("td", { "class": "n" }, r.mean_weight.toFixed(2)));
      tr.appendChild(el("td", { "class": "n" }, fmtP(r.mean_probability)));
      tr.appendChild(el("td", { "class": "n" }, fmtInt(r.links)));
      var td = el("td", { "class": "ex" });
      r.examples.forEach(function (k) {
        var b = el("button", { "class": "ex", type: "button", title: "open in the waterfall" }, P.l[k] + "–" + P.r[k]);
        b.addEventListener("click", function () { drawWaterfall(k); $("waterfall").scrollIntoView(); });
        td.appendChild(b);
      });
      tr.appendChild(td);
      tb.appendChild(tr);
    });
    $("pattern-shown").textContent = Math.min(rows.length, 400) + " of " + fmtInt(C.patterns) + " patterns shown";
  }
  $("pattern-sort").addEventListener("change", fillPatterns);
  fillPatterns();

  /* ------------------------------------------------------------- clusters */
  var pick = $("cluster-pick");
  D.clusters.forEach(function (c, i) {
    pick.appendChild(el("option", { value: String(i) }, "person " + c.person_id + ": " + c.records.length +
      " records" + (c.conflicts ? ", conflict" : "") + (c.weakest_link !== null ? ", weakest link p = " + fmtP(c.weakest_link) : "")));
  });
  function drawCluster(i) {
    var c = D.clusters[i], fig = $("cluster-chart");
    fig.innerHTML = "";
    $("cluster-verdict").textContent = c.verdict;
    var n = c.records.length, W = 420, H = 420, cx = W / 2, cy = H / 2, rad = n > 1 ? 150 : 0;
    var pos = c.records.map(function (_, j) {
      var a = -Math.PI / 2 + 2 * Math.PI * j / n;
      return [cx + rad * Math.cos(a), cy + rad * Math.sin(a)];
    });
    var svg = sv("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "cluster" });
    var weakest = -1;
    c.edges.forEach(function (e, j) {
      if (e[4] && c.weakest_link !== null && Math.abs(e[2] - c.weakest_link) < 1e-6 && weakest < 0) { weakest = j; }
    });
    c.edges.forEach(function (e, j) {
      var a = pos[e[0]], b = pos[e[1]];
      svg.appendChild(sv("line", { x1: a[0], y1: a[1], x2: b[0], y2: b[1],
        stroke: j === weakest ? "#b00020" : (e[4] ? "#0072B2" : "#8a939e"),
        "stroke-width": 0.8 + 3.2 * e[2], "stroke-dasharray": e[4] ? "" : "5 4", "class": "edge" }));
      if (n <= 12) {
        svg.appendChild(sv("text", { x: (a[0] + b[0]) / 2, y: (a[1] + b[1]) / 2 - 3, "text-anchor": "middle" }, e[3].toFixed(1)));
      }
    });
    var srcIdx = {};
    D.sources.forEach(function (s, k) { srcIdx[s] = k; });
    c.records.forEach(function (r, j) {
      svg.appendChild(sv("circle", { cx: pos[j][0], cy: pos[j][1], r: 9, fill: COLOURS[(srcIdx[c.sources[j]] || 0) % 8], stroke: "#fff" }));
      var out = pos[j][0] >= cx;
      svg.appendChild(sv("text", { x: pos[j][0] + (out ? 13 : -13), y: pos[j][1] + 4, "text-anchor": out ? "start" : "end" },
        r + " " + c.sources[j]));
    });
    fig.appendChild(svg);
    var tb = $("cluster-table").querySelector("tbody");
    tb.innerHTML = "";
    c.edges.slice().sort(function (a, b) { return a[2] - b[2]; }).forEach(function (e) {
      var tr = el("tr");
      tr.appendChild(el("td", { "class": "n" }, String(c.records[e[0]])));
      tr.appendChild(el("td", { "class": "n" }, String(c.records[e[1]])));
      tr.appendChild(el("td", { "class": "n" }, fmtP(e[2])));
      tr.appendChild(el("td", { "class": "n" }, e[3].toFixed(2)));
      tr.appendChild(el("td", {}, e[4] ? "yes" : "no"));
      tb.appendChild(tr);
    });
  }
  if (D.clusters.length) {
    pick.addEventListener("change", function () { drawCluster(parseInt(pick.value, 10)); });
    drawCluster(0);
  } else {
    $("cluster-verdict").textContent = "No cluster holds more than one record.";
  }

  /* ------------------------------------------------------------- EM trace */
  var T = D.em_trace, steps = T.map(function (_, i) { return i + 1; });
  var bounds = [];
  T.forEach(function (t, i) { if (i > 0 && t.session !== T[i - 1].session) { bounds.push({ x: i + 0.5, colour: "#c0c6cd" }); } });
  if (T.length) {
    lineChart($("em-lambda"), { name: "em-lambda", series: [{ name: "λ", x: steps, y: T.map(function (t) { return t.lambda; }) }],
      xlabel: "EM iteration (all fits in order; grey lines separate fits)", ylabel: "λ", logy: true, vlines: bounds, height: 220 });
  } else {
    $("em-lambda").appendChild(el("p", { "class": "absent" }, "Not available: linkage_model.json holds no EM trace."));
  }
  var emPick = $("em-comp");
  comps.forEach(function (c, i) { emPick.appendChild(el("option", { value: String(i) }, c.name)); });
  function drawEm(k) {
    var withMu = T.filter(function (t) { return t.m; }).length > 0;
    ["m", "u"].forEach(function (which) {
      var fig = $("em-" + which);
      if (!withMu) {
        fig.innerHTML = "";
        fig.appendChild(el("p", { "class": "absent" }, "Not available: this run's EM trace has no m and u per iteration (written by an older version)."));
        return;
      }
      var series = comps[k].levels.map(function (lv, g) {
        return { name: String(lv.level), x: steps, y: T.map(function (t) { return t[which] ? t[which][k][g] : null; }) };
      });
      lineChart(fig, { name: "em-" + which, series: series, xlabel: "EM iteration", ylabel: which + " of " + comps[k].name,
        logy: which === "u", ymin: which === "m" ? 0 : undefined, ymax: which === "m" ? 1 : undefined, vlines: bounds, height: 240 });
    });
  }
  emPick.addEventListener("change", function () { drawEm(parseInt(emPick.value, 10)); });
  if (comps.length) { drawEm(0); }

  /* ------------------------------------------------------------- term frequencies */
  var tfBox = $("tf-charts");
  if (!D.tf.length) { tfBox.appendChild(el("p", { "class": "absent" }, "Not available: no term-frequency tables in linkage_model.json.")); }
  D.tf.forEach(function (t) {
    var fig = el("figure", { "class": "chart" });
    tfBox.appendChild(fig);
    var ranks = t.bits.map(function (_, i) { return i + 1; });
    lineChart(fig, { name: "tf-" + t.column, series: [{ name: t.column, x: ranks, y: t.bits }],
      xlabel: "value rank (most frequent first) of " + fmtInt(t.distinct_values) + " values", ylabel: t.column + ": TF bits", height: 220 });
    var cap = el("figcaption", {}, t.column + ": Σf² = " + t.sum_squared_frequency.toExponential(3) +
      (t.values ? "; most frequent: " + t.values.slice(0, 8).join(", ") : ""));
    fig.appendChild(cap);
  });

  window.recaptureExplorer = { data: D, selectPair: drawWaterfall, setThreshold: showThreshold, waterfall: waterfall };
})();
